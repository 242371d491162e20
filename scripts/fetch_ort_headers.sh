#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ headers (API version 21) for building custom_ops/.
#
# The onnxruntime Python wheel ships no headers, so this downloads Debian trixie's
# libonnxruntime-dev package (ONNX Runtime 1.21) and unpacks only its include folder.
# Nothing is installed and the machine's apt configuration is left alone: apt runs
# against a private sources list, lists folder and cache inside a temporary folder.
#
# Usage: scripts/fetch_ort_headers.sh [DEST]     (DEST defaults to <repo>/.ort_headers)
# Afterwards DEST/onnxruntime_c_api.h exists; pass DEST to CMake as
# -DONNXRUNTIME_INCLUDE_DIR=DEST or let the build find it there by default.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-${repo_root}/.ort_headers}"
mirror="${MAMBA_EXPORT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite="trixie"
package="libonnxruntime-dev"
keyring="/usr/share/keyrings/debian-archive-keyring.gpg"

if [[ -f "${dest}/onnxruntime_c_api.h" ]]; then
  echo "ONNX Runtime headers already in ${dest}"
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "${tool}" >/dev/null || { echo "error: ${tool} not found (this script needs a Debian-based system; otherwise pass the headers with --include-dir)" >&2; exit 1; }
done
[[ -f "${keyring}" ]] || { echo "error: ${keyring} not found (install debian-archive-keyring)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/lists/partial" "${work}/cache/archives/partial" "${work}/debs"
echo "deb [signed-by=${keyring}] ${mirror} ${suite} main" > "${work}/sources.list"
: > "${work}/status"

# Every path apt would write to points into ${work}; the system's sources are not read.
apt_opts=(
  -o "Dir::Etc::SourceList=${work}/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=${work}/lists"
  -o "Dir::State::Status=${work}/status"
  -o "Dir::Cache=${work}/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Get::List-Cleanup=0"
  -o "APT::Sandbox::User=$(id -un)"  # download as ourselves into our own temporary folder
)

echo "Reading the ${suite} package index from ${mirror} ..."
apt-get "${apt_opts[@]}" -qq update
(cd "${work}/debs" && apt-get "${apt_opts[@]}" -qq download "${package}")
deb="$(ls "${work}"/debs/*.deb)"
echo "Unpacking $(basename "${deb}") (not installing)"
dpkg -x "${deb}" "${work}/root"

headers="$(dirname "$(find "${work}/root" -name onnxruntime_c_api.h | head -n 1)")"
[[ -f "${headers}/onnxruntime_c_api.h" ]] || { echo "error: ${package} has no onnxruntime_c_api.h" >&2; exit 1; }
api_version="$(sed -n 's/^#define ORT_API_VERSION \([0-9]*\).*/\1/p' "${headers}/onnxruntime_c_api.h")"
mkdir -p "${dest}"
cp -r "${headers}/." "${dest}/"
echo "$(basename "${deb}")" > "${dest}/SOURCE"
echo "ONNX Runtime headers (API version ${api_version}) in ${dest}"
