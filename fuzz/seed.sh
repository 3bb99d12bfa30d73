#!/bin/sh
# Fills fuzz/corpus/<target>/ with small seeds from the repository's shared conformance data
# (`<workspace root>/../shared`) and a few hand-made inputs. The corpora are not committed
# (.gitignore); run this once before `cargo fuzz run <target> -s none`.
set -eu
cd "$(dirname "$0")"
shared=../../shared/conformance
corpus=corpus
mkdir -p "$corpus"/dockerfile_parse "$corpus"/dockerignore "$corpus"/cache_inline \
    "$corpus"/cache_config "$corpus"/image_documents "$corpus"/www_authenticate \
    "$corpus"/tar_extract

# Dockerfiles: the BuildKit parser test cases, positive and negative.
n=0
for f in "$shared"/buildkit-dockerfile-parser*/*/Dockerfile "$shared"/*-inline-sample/Dockerfile; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cp "$f" "$corpus/dockerfile_parse/shared-$n"
done

printf '*.log\n!keep.log\n**/node_modules\n# comment\n/abs/./x\n\000src/keep.log' \
    > "$corpus/dockerignore/basic"
printf '[a-z]?\\*\n!\n\000ab' > "$corpus/dockerignore/classes"

# Inline caches: the value of `moby.buildkit.cache.v0` as stored, and decoded.
for sample in "$shared"/buildkit-v0.24-inline-sample "$shared"/buildkit-v0.8-inline-sample; do
    name=$(basename "$sample")
    python3 - "$sample/config.json" "$corpus/cache_inline/$name" <<'PY'
import base64, json, sys
value = json.load(open(sys.argv[1]))["moby.buildkit.cache.v0"]
open(sys.argv[2] + ".b64", "w").write(value)
open(sys.argv[2] + ".json", "wb").write(base64.b64decode(value))
PY
    # Image documents: the first byte picks config (0), manifest (1), index (2), either (3).
    { printf '\000'; cat "$sample/config.json"; } > "$corpus/image_documents/$name-config"
    { printf '\000'; cat "$sample/base-config.json"; } > "$corpus/image_documents/$name-base-config"
    { printf '\001'; cat "$sample/manifest.json"; } > "$corpus/image_documents/$name-manifest"
    { printf '\003'; cat "$sample/manifest.json"; } > "$corpus/image_documents/$name-either"
done
d=sha256:0000000000000000000000000000000000000000000000000000000000000000
e=sha256:1111111111111111111111111111111111111111111111111111111111111111
printf '\002{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":7,"platform":{"os":"linux","architecture":"amd64"}}]}' \
    "$d" > "$corpus/image_documents/index"

printf '{"layers":[{"blob":"%s","parent":-1},{"blob":"%s","annotations":{"mediaType":"m","diffID":"%s","size":7,"createdAt":"2026-01-01T00:00:00Z"}}],"records":[{"digest":"%s"},{"layers":[{"layer":1,"createdAt":"2026-01-01T00:00:01.5Z"}],"chains":[{"layers":[0,1]}],"digest":"%s","inputs":[[{"selector":"sha256:x","link":0}]]}]}' \
    "$d" "$e" "$d" "$d" "$e" > "$corpus/cache_config/layers"

printf 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"' \
    > "$corpus/www_authenticate/bearer"
printf 'Basic realm=x, Bearer realm="a\\"b",scope="a b",error=insufficient_scope' \
    > "$corpus/www_authenticate/two"

# Layers: small tars with files, links, whiteouts; variant byte 0 (plain) and 1 (gzip).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/t/dir/sub"
echo hi > "$work/t/dir/file"
ln -s ../dir "$work/t/dir/sub/up"
ln -s /etc/passwd "$work/t/abs"
ln "$work/t/dir/file" "$work/t/hard"
: > "$work/t/dir/.wh.gone"
: > "$work/t/dir/sub/.wh..wh..opq"
(cd "$work/t" && tar --format=gnu -cf "$work/gnu.tar" . && tar --format=pax -cf "$work/pax.tar" .)
for f in gnu pax; do
    { printf '\000'; cat "$work/$f.tar"; } > "$corpus/tar_extract/$f-plain"
    { printf '\001'; cat "$work/$f.tar"; } > "$corpus/tar_extract/$f-gzip"
    { printf '\006'; cat "$work/$f.tar"; } > "$corpus/tar_extract/$f-overlay-planted"
done
