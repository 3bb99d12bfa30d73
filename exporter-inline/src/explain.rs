//! Pushing inlay's explain facts artifact (see
//! [`inlay_core::cache::artifact::INLAY_EXPLAIN_ARTIFACT_TYPE`]): an OCI manifest whose config
//! is the empty descriptor and whose one layer is the facts JSON, referring to the image
//! through `subject`, listed in the referrers tag index like the stages cache artifact.

use std::collections::BTreeMap;

use bytes::Bytes;
use inlay_core::cache::artifact::{ExplainFacts, INLAY_EXPLAIN_ARTIFACT_TYPE};
use inlay_core::image::ImageManifest;
use inlay_core::{Descriptor, Reference, media_types};
use inlay_registry::{Client, referrers_tag};

use crate::artifact::{ArtifactReport, add_to_referrers_index};
use crate::error::ExportError;
use crate::push::{PushOptions, PushReport, push_one};
use crate::source::BlobLocation;

/// The OCI empty config blob (`{}`, image-spec "Guidance for an Empty Descriptor").
const EMPTY_CONFIG: &[u8] = b"{}";

/// The explain artifact's manifest bytes for `facts` about `subject`.
pub fn explain_manifest(subject: &Descriptor, facts: &ExplainFacts) -> (Bytes, Bytes) {
    let facts_bytes = Bytes::from(facts.to_json());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_types::OCI_MANIFEST.to_owned()),
        artifact_type: Some(INLAY_EXPLAIN_ARTIFACT_TYPE.to_owned()),
        config: Descriptor::of_bytes(media_types::OCI_EMPTY, EMPTY_CONFIG),
        layers: vec![Descriptor::of_bytes(
            INLAY_EXPLAIN_ARTIFACT_TYPE,
            &facts_bytes,
        )],
        subject: Some(subject.clone()),
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest model always serialises");
    (Bytes::from(bytes), facts_bytes)
}

/// Pushes the explain facts of the image `subject` into `image`'s repository: the empty
/// config, the facts blob, the manifest by digest, then the referrers tag index.
pub async fn push_explain_artifact(
    client: &Client,
    image: &Reference,
    subject: &Descriptor,
    facts: &ExplainFacts,
    options: &PushOptions,
) -> Result<ArtifactReport, ExportError> {
    let (manifest, facts_bytes) = explain_manifest(subject, facts);
    let descriptor = Descriptor::of_bytes(media_types::OCI_MANIFEST, &manifest);
    let mut blobs = PushReport {
        digest: Some(descriptor.digest.clone()),
        ..PushReport::default()
    };
    for (blob, bytes) in [
        (
            Descriptor::of_bytes(media_types::OCI_EMPTY, EMPTY_CONFIG),
            Bytes::from_static(EMPTY_CONFIG),
        ),
        (
            Descriptor::of_bytes(INLAY_EXPLAIN_ARTIFACT_TYPE, &facts_bytes),
            facts_bytes.clone(),
        ),
    ] {
        let moved = push_one(
            client,
            image,
            &blob,
            BlobLocation::Bytes(bytes),
            &options.spool_dir(),
        )
        .await?;
        blobs.count(moved);
    }
    let by_digest = image.with_digest(descriptor.digest.clone());
    crate::push::put_manifest_after_blobs(client, &by_digest, media_types::OCI_MANIFEST, manifest)
        .await
        .map_err(ExportError::registry("push manifest", &by_digest))?;
    blobs.manifests_pushed.push(by_digest);
    let mut referrer = descriptor.clone();
    referrer.artifact_type = Some(INLAY_EXPLAIN_ARTIFACT_TYPE.to_owned());
    let tag = image.with_tag(&referrers_tag(&subject.digest));
    let index_updated = add_to_referrers_index(client, &tag, referrer).await?;
    Ok(ArtifactReport {
        digest: descriptor.digest,
        referrers_tag: tag,
        index_updated,
        blobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_its_type_subject_and_facts() {
        let subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
        let (bytes, facts) = explain_manifest(&subject, &ExplainFacts::default());
        let manifest: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            manifest.artifact_type.as_deref(),
            Some(INLAY_EXPLAIN_ARTIFACT_TYPE)
        );
        assert_eq!(manifest.subject.unwrap(), subject);
        assert_eq!(manifest.config.media_type, media_types::OCI_EMPTY);
        assert_eq!(
            manifest.layers[0].digest,
            inlay_core::Digest::sha256_of(&facts)
        );
    }
}
