#!/usr/bin/env bash
# usage: run.sh BUILD_DIR THIS_DIR
set -euo pipefail
build_dir=$1
here=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
examples="$work/prefix/share/crmhost-plugin-api/examples"
test -f "$work/prefix/include/crmhost/plugin.h"
test -f "$work/prefix/lib/cmake/crmhost-plugin-api/crmhost-plugin-api-config.cmake" ||
  test -f "$work/prefix/lib/x86_64-linux-gnu/cmake/crmhost-plugin-api/crmhost-plugin-api-config.cmake"

# Only the installed prefix is offered: nothing from the source tree may leak into these builds.
for project in "$examples" "$here/sdk-plugin"; do
  name=$(basename "$project")
  cmake -S "$project" -B "$work/build-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_COMPILE_WARNING_AS_ERROR=ON >/dev/null
  cmake --build "$work/build-$name" >/dev/null
done

mkdir "$work/plugins"
cp "$work/build-examples/crmhost-memory.so" "$work/build-sdk-plugin/hello-sdk.so" "$work/plugins/"
listing=$("$work/prefix/bin/crmhost" plugins --plugin-dir "$work/plugins" --json)
echo "$listing"
grep -q '"id": "memory"' <<<"$listing"
grep -q '"id": "hello-sdk"' <<<"$listing"
grep -q '"refused": \[\]' <<<"$listing"
echo "out-of-tree plugins built and loaded"
