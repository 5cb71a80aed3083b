#!/usr/bin/env bash
# Builds the release archives of kubectl-zdupgrade and the krew manifest that names them.
#
#   scripts/release.sh [--owner OWNER | --base-url URL] [--version X.Y.Z] [--out DIR]
#                      [--platform OS/ARCH]... [--only-available] [--prebuilt DIR]
#   scripts/release.sh --krew-bot-template [--owner OWNER | --base-url URL]
#
# For each platform (default: linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
# windows/amd64) it builds kubectl-zdupgrade and kubectl_complete-zdupgrade in release mode
# for the first of the platform's Rust targets that is installed (`rustup target list
# --installed`), packs them with LICENSE, README.md and docs/ into
# kubectl-zdupgrade_vVERSION_OS_ARCH.tar.gz (.zip for Windows when `zip` exists), and writes
# OUT/zdupgrade.yaml from plugin-manifest/zdupgrade.yaml.tmpl with each archive's URL
# (BASE/vVERSION/ARCHIVE, BASE being https://github.com/OWNER/kubectl-zdupgrade/releases/download
# unless --base-url says otherwise) and sha256.
#
# A platform that cannot be built here makes the script fail, naming it; with
# --only-available it is left out of the archives and of the manifest instead. A manifest
# never names an archive that was not built.
#
# --prebuilt DIR takes the host platform's two binaries from DIR (already built, e.g. by
# `cargo build --release`) instead of building them; their --version must be VERSION.
# --krew-bot-template prints the template krew-release-bot reads (.krew.yaml at the root of
# the repository): the same manifest with `{{ .TagName }}` for the version and the bot's
# `addURIAndSha` for each platform's URL and sha256.
#
# Needs bash, cargo (and rustup to list the targets), tar, sha256sum or shasum; zip is
# optional.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEMPLATE=$ROOT/plugin-manifest/zdupgrade.yaml.tmpl
BINARIES=(kubectl-zdupgrade kubectl_complete-zdupgrade)
ALL_PLATFORMS=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64)
# The GitHub owner the manifest has named so far; a fork passes its own.
OWNER=zdupgrade

die() {
  echo "release.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

# The Rust targets that can build a platform, best first (musl: a static Linux binary).
targets_of() {
  case $1 in
    linux/amd64) echo x86_64-unknown-linux-musl x86_64-unknown-linux-gnu ;;
    linux/arm64) echo aarch64-unknown-linux-musl aarch64-unknown-linux-gnu ;;
    darwin/amd64) echo x86_64-apple-darwin ;;
    darwin/arm64) echo aarch64-apple-darwin ;;
    windows/amd64) echo x86_64-pc-windows-msvc x86_64-pc-windows-gnu ;;
    *) return 1 ;;
  esac
}

# The platform a Rust target builds for, if it is one of ours.
platform_of() {
  local platform target
  for platform in "${ALL_PLATFORMS[@]}"; do
    for target in $(targets_of "$platform"); do
      if [[ $target == "$1" ]]; then
        echo "$platform"
        return 0
      fi
    done
  done
  return 1
}

exe_suffix() {
  if [[ $1 == windows/* ]]; then echo .exe; fi
}

archive_extension() {
  if [[ $1 == windows/* ]] && { [[ ${2-} == bot ]] || command -v zip >/dev/null; }; then
    echo zip
  else
    echo tar.gz
  fi
}

# kubectl-zdupgrade_TAG_OS_ARCH.EXT
archive_name() {
  local tag=$1 platform=$2 extension=$3
  echo "kubectl-zdupgrade_${tag}_${platform%/*}_${platform#*/}.${extension}"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

# One entry of spec.platforms; `location` is the uri and sha256 lines (or the bot's call).
platform_entry() {
  local platform=$1 location=$2 suffix binary
  suffix=$(exe_suffix "$platform")
  printf '  - selector:\n      matchLabels:\n        os: %s\n        arch: %s\n' \
    "${platform%/*}" "${platform#*/}"
  printf '%s\n' "$location"
  printf '    files:\n'
  for binary in "${BINARIES[@]}"; do
    printf '    - from: %s\n      to: .\n' "$binary$suffix"
  done
  printf '    - from: LICENSE\n      to: .\n'
  printf '    bin: kubectl-zdupgrade%s\n' "$suffix"
}

# The template with its placeholders filled in.
manifest() {
  local version=$1 homepage=$2 platforms=$3 line
  while IFS= read -r line; do
    if [[ $line == @PLATFORMS@ ]]; then
      printf '%s' "$platforms"
    else
      line=${line//@VERSION@/$version}
      printf '%s\n' "${line//@HOMEPAGE@/$homepage}"
    fi
  done < "$TEMPLATE"
}

VERSION=
BASE_URL=
OUT=$ROOT/target/dist
PLATFORMS=()
ONLY_AVAILABLE=false
PREBUILT=
BOT_TEMPLATE=false
while (($#)); do
  case $1 in
    --owner) OWNER=${2:?--owner needs a value}; shift ;;
    --base-url) BASE_URL=${2:?--base-url needs a value}; shift ;;
    --version) VERSION=${2:?--version needs a value}; shift ;;
    --out) OUT=${2:?--out needs a value}; shift ;;
    --platform) PLATFORMS+=("${2:?--platform needs a value}"); shift ;;
    --only-available) ONLY_AVAILABLE=true ;;
    --prebuilt) PREBUILT=${2:?--prebuilt needs a value}; shift ;;
    --krew-bot-template) BOT_TEMPLATE=true ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
HOMEPAGE=https://github.com/$OWNER/kubectl-zdupgrade
BASE_URL=${BASE_URL:-$HOMEPAGE/releases/download}
BASE_URL=${BASE_URL%/}
((${#PLATFORMS[@]})) || PLATFORMS=("${ALL_PLATFORMS[@]}")
for platform in "${PLATFORMS[@]}"; do
  targets_of "$platform" >/dev/null || die "unknown platform $platform (one of: ${ALL_PLATFORMS[*]})"
done

if $BOT_TEMPLATE; then
  # shellcheck disable=SC2016 # `{{ .TagName }}` is the bot's, not the shell's
  tag='{{ .TagName }}'
  entries=
  for platform in "${PLATFORMS[@]}"; do
    url=$BASE_URL/$tag/$(archive_name "$tag" "$platform" "$(archive_extension "$platform" bot)")
    entries+=$(platform_entry "$platform" "    {{addURIAndSha \"$url\" .TagName }}")$'\n'
  done
  manifest "$tag" "$HOMEPAGE" "$entries"
  exit 0
fi

if [[ -z $VERSION ]]; then
  VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
  [[ -n $VERSION ]] || die "no version in Cargo.toml; pass --version"
fi
TAG=v$VERSION
HOST=$(rustc -vV | sed -n 's/^host: //p')
HOST_PLATFORM=$(platform_of "$HOST" || true)
if [[ -n $PREBUILT ]]; then
  [[ -n $HOST_PLATFORM ]] || die "--prebuilt: this machine ($HOST) is not one of the release platforms"
  for binary in "${BINARIES[@]}"; do
    [[ -x $PREBUILT/$binary$(exe_suffix "$HOST_PLATFORM") ]] || die "--prebuilt: no $binary in $PREBUILT"
  done
  built_version=$("$PREBUILT/kubectl-zdupgrade" --version | awk '{print $NF}')
  [[ $built_version == "$VERSION" ]] ||
    die "--prebuilt: $PREBUILT/kubectl-zdupgrade is version $built_version, not $VERSION"
fi
if command -v rustup >/dev/null; then
  INSTALLED=" $(rustup target list --installed | tr '\n' ' ') "
else
  INSTALLED=" $HOST "
fi
if ! command -v zip >/dev/null && [[ " ${PLATFORMS[*]} " == *" windows/amd64 "* ]]; then
  echo "release.sh: zip not found: the Windows archive will be a .tar.gz, not the .zip .krew.yaml names" >&2
fi

# The archives are reproducible: the same files give the same bytes (the files dated from the
# last commit, owned by root, in name order, gzip without a name or time).
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
TAR_OPTIONS=()
if tar --version 2>/dev/null | grep -q GNU; then
  TAR_OPTIONS=(--sort=name --owner=0 --group=0 --numeric-owner)
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
entries=
for platform in "${PLATFORMS[@]}"; do
  suffix=$(exe_suffix "$platform")
  if [[ -n $PREBUILT && $platform == "$HOST_PLATFORM" ]]; then
    from=$PREBUILT
    echo "release.sh: $platform: binaries from $PREBUILT" >&2
  else
    target=
    for candidate in $(targets_of "$platform"); do
      if [[ $INSTALLED == *" $candidate "* ]]; then
        target=$candidate
        break
      fi
    done
    if [[ -z $target ]]; then
      why="no Rust target for $platform is installed here (tried: $(targets_of "$platform"))"
      if $ONLY_AVAILABLE; then
        echo "release.sh: skipping $platform: $why; it is not in the manifest" >&2
        continue
      fi
      die "cannot build $platform: $why; install one with rustup, or pass --only-available to leave it out"
    fi
    echo "release.sh: $platform: building for $target" >&2
    bins=()
    for binary in "${BINARIES[@]}"; do bins+=(--bin "$binary"); done
    (cd "$ROOT" && cargo build --release --locked --target "$target" "${bins[@]}") ||
      die "building for $platform ($target) failed: its linker or SDK may be missing here"
    from=$TARGET_DIR/$target/release
  fi

  dir=$STAGE/$platform
  mkdir -p "$dir"
  files=()
  for binary in "${BINARIES[@]}"; do
    cp "$from/$binary$suffix" "$dir/"
    files+=("$binary$suffix")
  done
  # The README links into docs/: the archive carries both, so its links resolve once unpacked.
  cp "$ROOT/LICENSE" "$ROOT/README.md" "$dir/"
  cp -R "$ROOT/docs" "$dir/"
  files+=(LICENSE README.md docs)
  (cd "$dir" && find "${files[@]}" -exec touch -d "@$EPOCH" {} + 2>/dev/null) || true
  extension=$(archive_extension "$platform")
  archive=$(archive_name "$TAG" "$platform" "$extension")
  rm -f "$OUT/$archive"
  if [[ $extension == zip ]]; then
    (cd "$dir" && zip -q -X -r "$OUT/$archive" "${files[@]}")
  else
    tar ${TAR_OPTIONS[@]+"${TAR_OPTIONS[@]}"} -cf - -C "$dir" "${files[@]}" | gzip -n > "$OUT/$archive"
  fi
  sha256=$(sha256_of "$OUT/$archive")
  [[ $sha256 =~ ^[0-9a-f]{64}$ && ! $sha256 =~ ^0+$ ]] || die "bad sha256 for $archive: $sha256"
  entries+=$(platform_entry "$platform" "    uri: $BASE_URL/$TAG/$archive
    sha256: \"$sha256\"")$'\n'
  echo "release.sh: $OUT/$archive  $sha256" >&2
done

[[ -n $entries ]] || die "no platform could be built here; nothing to release"
manifest "$TAG" "$HOMEPAGE" "$entries" > "$OUT/zdupgrade.yaml"
if grep -q '@[A-Z]*@' "$OUT/zdupgrade.yaml"; then
  die "a placeholder is left in $OUT/zdupgrade.yaml"
fi
echo "release.sh: $OUT/zdupgrade.yaml" >&2
