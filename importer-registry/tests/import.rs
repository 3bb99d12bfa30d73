//! Importing caches from the real registry (Debian's `docker-registry` on 127.0.0.1), and from
//! mocks where the exact BuildKit sample bytes or a fault are needed.

// Helpers outside #[test] fns are test code too; the fault scenario is one long story.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::sync::Arc;

use inlay_core::cache::{Alternative, CacheStore, Lookup, MatchSet};
use inlay_core::descriptor::{ANNOTATION_BUILDKIT_DESCRIPTION, ANNOTATION_UNCOMPRESSED};
use inlay_core::{Descriptor, Digest, Platform, media_types};
use inlay_importer_registry::{CacheKind, ImportError, Importer, OriginKind};
use serde_json::{Value, json};
use support::http::{HttpServer, Request, Response};
use support::image::{
    Layer, TestImage, cache_config, layer, push_index, push_registry_cache_index,
    push_registry_cache_manifest, push_stages_artifact,
};
use support::proxy::Proxy;
use support::registry::{Setup, TestRegistry};
use support::{anonymous_client, read_conformance, reference};

const V08: &str = "buildkit-v0.8-inline-sample";
const V024: &str = "buildkit-v0.24-inline-sample";
// Record digests of the v0.8 sample (spec section 8.3).
const BUSYBOX: &str = "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74";
const RUN_ECHO: &str = "sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676";
const DATA_TXT: &str = "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7";
const COPY: &str = "sha256:b69e04cd2050e4ec7e21405522fa5313dce88d81e637a848dbcc160953a82ecc";
const WORKDIR: &str = "sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce";
const RUN_CAT: &str = "sha256:c61c4fe0a25c97bb4fe001289eef9c2b4dca1be16edf753f346dc24c89749298";

fn d(s: &str) -> Digest {
    s.parse().unwrap()
}

fn sample_config(sample: &str) -> Value {
    serde_json::from_slice(&read_conformance(&format!("{sample}/config.json"))).unwrap()
}

/// The v0.8 sample's config (history and inline value as BuildKit wrote them) on five layers
/// of our own.
fn v08_image(seed: u64, platform: Platform) -> TestImage {
    let layers: Vec<Layer> = (0..5)
        .map(|i| layer(seed * 10 + i, 200 + i as usize))
        .collect();
    TestImage::new(layers, sample_config(V08), platform)
}

fn one(set: &MatchSet) -> Vec<Alternative<'_>> {
    vec![Alternative {
        parents: set,
        selector: None,
    }]
}

fn hit_layers(lookup: &Lookup<'_>) -> Vec<Digest> {
    match lookup {
        Lookup::Hit { hit, .. } => hit.result.layers.iter().map(|l| l.digest.clone()).collect(),
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn matched(lookup: Lookup<'_>) -> MatchSet {
    match lookup {
        Lookup::Hit { matched, .. } | Lookup::NoResult { matched } => matched,
        Lookup::Miss(why) => panic!("expected a match: {why:?}"),
        _ => unreachable!(),
    }
}

/// Walks the sample build through the matcher (spec section 8.6): every step hits, each
/// result is the image prefix of our pushed layers.
fn check_v08_hits(store: &CacheStore, image: &TestImage) {
    let digests: Vec<Digest> = image
        .layers
        .iter()
        .map(|l| l.descriptor.digest.clone())
        .collect();
    let busybox = store.match_root(&d(BUSYBOX));
    assert_eq!(busybox.len(), 1);
    let run_echo = store.lookup(&d(RUN_ECHO), &[one(&busybox)]);
    assert_eq!(hit_layers(&run_echo), digests[..=1]);
    let run_echo = matched(run_echo);
    let data = store.match_root(&d(DATA_TXT));
    // COPY needs both inputs (intersection, spec section 4.6 step 3).
    assert!(matches!(
        store.lookup(&d(COPY), &[one(&run_echo), vec![]]),
        Lookup::Miss(_)
    ));
    let copy = store.lookup(&d(COPY), &[one(&run_echo), one(&data)]);
    assert_eq!(hit_layers(&copy), digests[..=2]);
    let copy = matched(copy);
    let workdir = matched(store.lookup(&d(WORKDIR), &[one(&copy)]));
    let run_cat = store.lookup(&d(RUN_CAT), &[one(&workdir)]);
    assert_eq!(hit_layers(&run_cat), digests);
    let Lookup::Hit { hit, .. } = run_cat else {
        unreachable!()
    };
    for (got, want) in hit.result.layers.iter().zip(&image.layers) {
        assert_eq!(got.uncompressed_digest(), Some(want.diff_id.clone()));
    }
    assert_eq!(
        hit.result.layers[4].annotations[ANNOTATION_BUILDKIT_DESCRIPTION],
        "RUN /bin/sh -c cat /data.txt > /app/out.txt # buildkit"
    );
}

fn layer_gets(proxy: &Proxy, layers: &[Layer]) -> usize {
    layers
        .iter()
        .map(|l| proxy.stats.count("GET", l.descriptor.digest.as_str()))
        .sum()
}

#[tokio::test]
async fn v08_sample_records_on_pushed_layers_hit_through_the_matcher_and_download_no_layer() {
    let reg = TestRegistry::start(&Setup::Open);
    let proxy = Proxy::counting(reg.addr).await;
    let client = anonymous_client();
    let image = v08_image(1, Platform::linux_amd64());
    let r = reference(&proxy.host(), "sample08/app");
    image.push(&client, &r).await;
    proxy.stats.reset();

    // No tag given: `:latest` is added.
    let imports = Importer::new(client)
        .import_all(&[format!("{}/sample08/app", proxy.host())])
        .await;
    assert_eq!(imports.warnings().count(), 0, "{:?}", imports.skipped);
    let cache = &imports.caches[0];
    assert_eq!(cache.reference.tag(), Some("latest"));
    assert_eq!(cache.kind, CacheKind::Inline);
    assert_eq!(cache.origins.len(), 1);
    assert_eq!(
        cache.origins[0].label,
        format!("{}/sample08/app:latest linux/amd64", proxy.host())
    );
    let store = imports.to_store();
    check_v08_hits(&store, &image);
    // Results remember where the blobs live.
    let sources = inlay_core::cache::artifact::distribution_sources(
        &store.origins()[0].records()[0..]
            .iter()
            .find(|r| !r.results.is_empty())
            .unwrap()
            .results[0]
            .layers[0],
    );
    assert_eq!(sources, vec![(proxy.host(), "sample08/app".to_owned())]);
    assert_eq!(layer_gets(&proxy, &image.layers), 0);
    assert_eq!(proxy.stats.count("HEAD", "/blobs/"), 0);
}

/// Serves `manifest` (with its media type) under `/v2/sample/manifests/latest` and by digest,
/// and the blobs in `blobs`; 404 for anything else (no referrers API, no referrers tag).
async fn mock_registry(
    manifest: Vec<u8>,
    media_type: &'static str,
    blobs: Vec<Vec<u8>>,
) -> HttpServer {
    let digest = Digest::sha256_of(&manifest);
    HttpServer::start(Arc::new(move |req: Request| {
        let path = req.path();
        if path == "/v2/" {
            return Response::new(200);
        }
        if path == "/v2/sample/manifests/latest" || path == format!("/v2/sample/manifests/{digest}")
        {
            return Response::new(200)
                .header("Content-Type", media_type)
                .header("Docker-Content-Digest", digest.as_str())
                .body(manifest.clone());
        }
        for blob in &blobs {
            if path == format!("/v2/sample/blobs/{}", Digest::sha256_of(blob)) {
                return Response::new(200).body(blob.clone());
            }
        }
        Response::new(404)
            .json(&json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}))
    }))
    .await
}

#[tokio::test]
async fn exact_buildkit_sample_bytes_import() {
    for (sample, records, roots) in [(V08, 6, 2), (V024, 7, 3)] {
        let manifest = read_conformance(&format!("{sample}/manifest.json"));
        let config = read_conformance(&format!("{sample}/config.json"));
        let server =
            mock_registry(manifest.clone(), media_types::DOCKER_MANIFEST, vec![config]).await;
        let imports = Importer::new(anonymous_client())
            .import_all(&[format!("{}/sample", server.addr)])
            .await;
        assert_eq!(imports.warnings().count(), 0, "{:?}", imports.skipped);
        let origin = &imports.caches[0].origins[0];
        assert_eq!(origin.manifest, Digest::sha256_of(&manifest));
        assert_eq!(origin.graph().len(), records);
        assert_eq!(origin.graph().roots().count(), roots);
        let inlay_importer_registry::OriginRecords::Inline { layers, .. } = &origin.records else {
            panic!("inline expected");
        };
        let config: Value =
            serde_json::from_slice(&read_conformance(&format!("{sample}/config.json"))).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(layers.len(), 5);
        for (l, want) in layers.iter().zip(diff_ids) {
            assert_eq!(
                l.annotations[ANNOTATION_UNCOMPRESSED],
                want.as_str().unwrap()
            );
        }
        assert!(
            !layers[0]
                .annotations
                .contains_key(ANNOTATION_BUILDKIT_DESCRIPTION)
        );
        assert_eq!(
            layers[3].annotations[ANNOTATION_BUILDKIT_DESCRIPTION],
            "WORKDIR /app"
        );
        assert_eq!(
            layers[1].annotations["buildkit/createdat"],
            config["history"][1]["created"].as_str().unwrap()
        );
        let store = imports.to_store();
        assert_eq!(store.match_root(&d(BUSYBOX)).len(), 1);
    }
}

#[tokio::test]
async fn index_with_two_platforms_imports_both_and_skips_attestations() {
    let reg = TestRegistry::start(&Setup::Open);
    let proxy = Proxy::counting(reg.addr).await;
    let client = anonymous_client();
    let amd = v08_image(2, Platform::linux_amd64());
    let arm = v08_image(3, Platform::new("linux", "arm64", "v8"));
    amd.push(&client, &reference(&proxy.host(), "multi/app:amd64"))
        .await;
    arm.push(&client, &reference(&proxy.host(), "multi/app:arm64"))
        .await;
    // A nested index holds arm64; an attestation entry is skipped without being fetched.
    let nested = push_index(
        &client,
        &reference(&proxy.host(), "multi/app:nested"),
        &[arm.descriptor()],
    )
    .await;
    let nested_bytes = client
        .get_manifest(&reference(&proxy.host(), "multi/app:nested"))
        .await
        .unwrap()
        .bytes;
    let mut nested_desc = Descriptor::of_bytes(media_types::OCI_INDEX, &nested_bytes);
    assert_eq!(nested_desc.digest, nested);
    nested_desc.platform = None;
    let attestation = TestImage::new(
        vec![layer(99, 10)],
        json!({}),
        Platform::new("unknown", "unknown", ""),
    );
    attestation
        .push(&client, &reference(&proxy.host(), "multi/app:att"))
        .await;
    let mut att_desc = attestation.descriptor();
    att_desc.annotations.insert(
        "vnd.docker.reference.type".into(),
        "attestation-manifest".into(),
    );
    push_index(
        &client,
        &reference(&proxy.host(), "multi/app:v1"),
        &[amd.descriptor(), nested_desc, att_desc],
    )
    .await;
    proxy.stats.reset();

    let imports = Importer::new(client)
        .import_all(&[format!("{}/multi/app:v1", proxy.host())])
        .await;
    assert_eq!(imports.warnings().count(), 0, "{:?}", imports.skipped);
    let cache = &imports.caches[0];
    let labels: Vec<&str> = cache.origins.iter().map(|o| o.label.as_str()).collect();
    assert_eq!(
        labels,
        vec![
            format!("{}/multi/app:v1 linux/amd64", proxy.host()),
            format!(
                "{}/multi/app:v1 {}",
                proxy.host(),
                Platform::new("linux", "arm64", "v8")
            ),
        ]
    );
    let store = imports.to_store();
    assert_eq!(store.match_root(&d(BUSYBOX)).len(), 2);
    assert_eq!(proxy.stats.count("GET", attestation.digest().as_str()), 0);
    assert_eq!(
        layer_gets(&proxy, &amd.layers) + layer_gets(&proxy, &arm.layers),
        0
    );
}

/// A two-layer registry cache config: root R, then record A on R with result layers 0..1.
fn registry_cache_json(layers: &[Layer]) -> String {
    format!(
        r#"{{"layers":[{{"blob":"{}","parent":-1}},{{"blob":"{}"}}],"records":[{{"digest":"{BUSYBOX}"}},{{"layers":[{{"layer":1,"createdAt":"2026-01-02T03:04:05Z"}}],"digest":"{RUN_ECHO}","inputs":[[{{"link":0}}]]}}]}}"#,
        layers[0].descriptor.digest, layers[1].descriptor.digest
    )
}

#[tokio::test]
async fn registry_caches_import_in_index_and_manifest_form() {
    let reg = TestRegistry::start(&Setup::Open);
    let proxy = Proxy::counting(reg.addr).await;
    let client = anonymous_client();
    let layers = vec![layer(40, 300), layer(41, 400)];
    let config = cache_config(&registry_cache_json(&layers));
    push_registry_cache_index(
        &client,
        &reference(&proxy.host(), "rc/app:index"),
        &layers,
        &config,
    )
    .await;
    push_registry_cache_manifest(
        &client,
        &reference(&proxy.host(), "rc/app:manifest"),
        &layers,
        &config,
    )
    .await;
    proxy.stats.reset();

    let imports = Importer::new(client)
        .import_all(&[
            format!("{}/rc/app:index", proxy.host()),
            format!("{}/rc/app:manifest", proxy.host()),
        ])
        .await;
    assert_eq!(imports.warnings().count(), 0, "{:?}", imports.skipped);
    assert_eq!(imports.caches[0].kind, CacheKind::RegistryIndex);
    assert_eq!(imports.caches[1].kind, CacheKind::RegistryManifest);
    assert_eq!(imports.caches[0].origins[0].kind, OriginKind::RegistryCache);
    let store = imports.to_store();
    assert_eq!(store.origins().len(), 2);
    let root = store.match_root(&d(BUSYBOX));
    assert_eq!(root.len(), 2);
    let lookup = store.lookup(&d(RUN_ECHO), &[one(&root)]);
    let Lookup::Hit { hit, matched } = lookup else {
        panic!("{lookup:?}")
    };
    assert_eq!(matched.len(), 2);
    let got: Vec<(Digest, Option<Digest>)> = hit
        .result
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.uncompressed_digest()))
        .collect();
    let want: Vec<(Digest, Option<Digest>)> = layers
        .iter()
        .map(|l| (l.descriptor.digest.clone(), Some(l.diff_id.clone())))
        .collect();
    assert_eq!(got, want);
    assert_eq!(layer_gets(&proxy, &layers), 0);
}

#[tokio::test]
async fn stages_artifact_is_found_through_the_referrers_tag() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let host = reg.host();
    let image = v08_image(5, Platform::linux_amd64());
    let r = reference(&host, "stages/app:v1");
    image.push(&client, &r).await;
    let stage_layers = vec![layer(50, 100), layer(51, 120)];
    let config = cache_config(&registry_cache_json(&stage_layers));
    let mut subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, &image.manifest);
    subject.platform = None;
    let artifact = push_stages_artifact(&client, &r, subject, &stage_layers, &config).await;

    let cache = Importer::new(client).import(&r.to_string()).await.unwrap();
    assert!(cache.warnings.is_empty(), "{:?}", cache.warnings);
    assert_eq!(cache.origins.len(), 2);
    let stages = &cache.origins[1];
    assert_eq!(stages.kind, OriginKind::StagesArtifact);
    assert_eq!(stages.manifest, artifact);
    assert_eq!(stages.label, format!("{r} stages cache"));
    let results = stages.results(1);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0.len(), 2);
    assert_eq!(results[0].0[1].digest, stage_layers[1].descriptor.digest);
}

#[tokio::test]
async fn faulty_references_warn_with_their_reason_and_good_ones_still_import() {
    let open = TestRegistry::start(&Setup::Open);
    let basic = TestRegistry::start(&Setup::Basic);
    let proxy = Proxy::counting(open.addr).await;
    let client = anonymous_client();
    let host = proxy.host();

    let good = v08_image(6, Platform::linux_amd64());
    good.push(&client, &reference(&host, "good/app:v1")).await;
    let mut corrupt_config = sample_config(V08);
    corrupt_config["moby.buildkit.cache.v0"] = json!("bm90IGpzb24=");
    let corrupt = TestImage::new(
        (0..5).map(|i| layer(70 + i, 50)).collect(),
        corrupt_config,
        Platform::linux_amd64(),
    );
    corrupt
        .push(&client, &reference(&host, "corrupt/app:v1"))
        .await;
    let big_layers = vec![layer(80, 10), layer(81, 10)];
    let padding = " ".repeat(1024 * 1024 + 1);
    let big = cache_config(&format!("{}{padding}", registry_cache_json(&big_layers)));
    push_registry_cache_index(
        &client,
        &reference(&host, "big/app:cache"),
        &big_layers,
        &big,
    )
    .await;
    // One platform with a diff_ids count that differs from its layers: only it is skipped.
    let mut short = sample_config(V08);
    short["rootfs"] = json!({"type": "layers", "diff_ids": []});
    let mismatched = TestImage::raw(
        vec![layer(90, 20)],
        serde_json::to_vec(&short).unwrap().into(),
        Platform::new("linux", "arm64", "v8"),
    );
    mismatched
        .push(&client, &reference(&host, "mixed/app:arm64"))
        .await;
    let mixed_good = v08_image(7, Platform::linux_amd64());
    mixed_good
        .push(&client, &reference(&host, "mixed/app:amd64"))
        .await;
    push_index(
        &client,
        &reference(&host, "mixed/app:v1"),
        &[mixed_good.descriptor(), mismatched.descriptor()],
    )
    .await;
    proxy.stats.reset();

    let refs = [
        format!("{host}/missing/app:v1"),
        format!("{}/private/app:v1", basic.host()),
        format!("{host}/corrupt/app:v1"),
        format!("{host}/big/app:cache"),
        "Not A Reference".to_owned(),
        format!("{host}/mixed/app:v1"),
        format!("{host}/good/app:v1"),
    ];
    let imports = Importer::new(client).import_all(&refs).await;
    let store = imports.to_store();
    check_v08_hits(
        &{
            let mut only_good = CacheStore::new();
            imports.caches.last().unwrap().add_to(&mut only_good);
            only_good
        },
        &good,
    );
    assert_eq!(
        store.match_root(&d(BUSYBOX)).len(),
        2,
        "mixed amd64 and good"
    );

    let skipped = &imports.skipped;
    assert_eq!(skipped.len(), 5, "{skipped:#?}");
    let missing = &skipped[0];
    assert_eq!(missing.reference, refs[0]);
    assert_eq!(missing.status(), Some(404));
    assert_eq!(missing.registry_details()[0].code, "MANIFEST_UNKNOWN");
    assert!(missing.to_string().contains(&refs[0]), "{missing}");
    assert!(missing.to_string().contains("404"), "{missing}");

    let unauthorised = &skipped[1];
    assert_eq!(unauthorised.reference, refs[1]);
    assert_eq!(unauthorised.status(), Some(401), "{unauthorised}");
    assert_eq!(unauthorised.registry_details()[0].code, "UNAUTHORIZED");

    let corrupt_w = &skipped[2];
    assert_eq!(corrupt_w.reference, refs[2]);
    // The only manifest failed: the reference imported nothing, and says which and why.
    assert_eq!(corrupt_w.manifest, Some(corrupt.digest()));
    assert!(
        matches!(corrupt_w.error, ImportError::Records { .. }),
        "{corrupt_w}"
    );
    assert!(
        corrupt_w.to_string().contains("do not decode"),
        "{corrupt_w}"
    );

    let big_w = &skipped[3];
    assert_eq!(big_w.reference, refs[3]);
    assert!(
        matches!(big_w.error, ImportError::TooLarge { limit, .. } if limit == 1024 * 1024),
        "{big_w}"
    );
    assert!(
        big_w.to_string().contains("larger than the limit"),
        "{big_w}"
    );

    assert!(
        matches!(skipped[4].error, ImportError::Reference { .. }),
        "{}",
        skipped[4]
    );

    let mixed = imports
        .caches
        .iter()
        .find(|c| c.reference.repository() == "mixed/app")
        .unwrap();
    assert_eq!(mixed.origins.len(), 1);
    assert_eq!(mixed.warnings.len(), 1);
    assert_eq!(mixed.warnings[0].manifest, Some(mismatched.digest()));
    assert!(matches!(
        mixed.warnings[0].error,
        ImportError::LayerCountMismatch {
            layers: 1,
            diff_ids: 0,
            ..
        }
    ));
    // The oversized config was refused before any byte of it moved.
    assert_eq!(proxy.stats.count("GET", big.0.digest.as_str()), 0);
    assert_eq!(layer_gets(&proxy, &good.layers), 0);
}

#[tokio::test]
async fn a_server_sending_more_than_the_cap_is_cut_off() {
    // The descriptor claims a small config; the server streams 2 MiB.
    let layers = vec![layer(1, 10), layer(2, 10)];
    let (mut desc, _) = cache_config(&registry_cache_json(&layers));
    desc.size = -1; // unknown, as docker 20.10 writes it
    let mut manifests: Vec<Descriptor> = layers.iter().map(support::image::annotated).collect();
    manifests.push(desc.clone());
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": manifests}),
    )
    .unwrap();
    let index_digest = Digest::sha256_of(&index);
    let config_path = format!("/v2/sample/blobs/{}", desc.digest);
    let server = HttpServer::start(Arc::new(move |req: Request| {
        if req.path() == "/v2/sample/manifests/latest" {
            return Response::new(200)
                .header("Content-Type", media_types::OCI_INDEX)
                .header("Docker-Content-Digest", index_digest.as_str())
                .body(index.clone());
        }
        if req.path() == config_path {
            return Response::new(200).body(vec![b' '; 2 * 1024 * 1024]);
        }
        Response::new(404)
    }))
    .await;
    let err = Importer::new(anonymous_client())
        .import(&format!("{}/sample", server.addr))
        .await
        .unwrap_err();
    assert!(matches!(err.error, ImportError::TooLarge { .. }), "{err}");
}
