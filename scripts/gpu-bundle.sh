#!/usr/bin/env bash
# Builds a self-contained folder that runs the mathagent CLI on a Linux x86-64 GPU host that has neither Node nor
# internet: an esbuild bundle of the CLI and its sandbox worker, the tfjs wasm binaries, better-sqlite3's addon,
# Dawn (npm `webgpu`, dist/linux-x64 only), the Vulkan loader libvulkan.so.1, an NVIDIA EGL Vulkan driver manifest,
# an xz'd copy of the Node binary running this script, the datasets, and run-on-gpu.sh, the launcher.
#
#   scripts/gpu-bundle.sh [OUT_DIR] [--no-data]      (default OUT_DIR: dist/gpu-bundle, ignored by git)
#   OUT_DIR/run-on-gpu.sh doctor                     (on the GPU host; any mathagent command works)
#   OUT_DIR/run-on-gpu.sh bench train --backend webgpu --preset base --json
#   OUT_DIR/run-on-gpu.sh --node FILE ARGS           (another script, same Node and GPU environment)
#
# Size: ~35 MB (Node ~24 MB and Dawn ~5 MB xz'd), so it fits the 64 MiB a device `run` call carries.
# Why xz the Node binary and dawn.node: they are 99 MB and 21 MB raw; xz -6 gives ~4:1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/dist/gpu-bundle"
with_data=1
for a in "$@"; do
  case "$a" in
    --no-data) with_data=0 ;;
    -h|--help) sed -n 2,12p "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "gpu-bundle: unknown option $a (use --no-data or an output folder)" >&2; exit 2 ;;
    *) out=$(realpath -m "$a") ;;
  esac
done
cache="$root/dist/.gpu-bundle-cache"
nm="$root/node_modules"

die() { echo "gpu-bundle: $*" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || die "build on x86-64 Linux: the bundle carries this machine's Node binary and Dawn for linux-x64"
command -v xz >/dev/null || die "xz is missing: apt-get install xz-utils"
node_bin=$(node -p process.execPath)
node_ver=$(node -p process.version)
case "$node_ver" in v20.19.*|v20.2*|v2[1-9].*) ;; *) die "Node $node_ver: use Node >= 20.19 (require() of the ESM webgpu package)";; esac
node -p "process.versions.modules" >/dev/null
[ -f "$nm/webgpu/dist/linux-x64/dawn.node" ] || die "node_modules/webgpu/dist/linux-x64/dawn.node is missing: npm install webgpu"
[ -f "$nm/better-sqlite3/build/Release/better_sqlite3.node" ] || die "better-sqlite3's addon is missing: npm rebuild better-sqlite3"

rm -rf "$out"
mkdir -p "$out/app/node_modules" "$out/vulkan" "$out/icd" "$cache"

# 1. The CLI and the sandbox worker. Only native/optional packages stay external; tfjs (wasm backend included)
#    is inside cli.cjs, and the wasm backend finds its .wasm files beside the bundle (__dirname).
ext=(--external:better-sqlite3 --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --external:bufferutil --external:utf-8-validate)
"$nm/.bin/esbuild" "$root/daemon/src/cli/main.ts" --bundle --platform=node --target=node20 --format=cjs --main-fields=module,main --log-level=warning --ignore-annotations \
  --outfile="$out/app/cli.cjs" "${ext[@]}"
"$nm/.bin/esbuild" "$root/daemon/src/env/sandboxWorker.ts" --bundle --platform=node --target=node20 --format=cjs --main-fields=module,main --log-level=warning --ignore-annotations \
  --outfile="$out/app/sandboxWorker.cjs" "${ext[@]}"
cp "$nm"/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$out/app/"

# 2. better-sqlite3 (its lib/ + addon) and the two small packages it loads the addon with.
bs="$out/app/node_modules/better-sqlite3"
mkdir -p "$bs/build/Release"
cp -r "$nm/better-sqlite3/package.json" "$nm/better-sqlite3/lib" "$bs/"
cp "$nm/better-sqlite3/build/Release/better_sqlite3.node" "$bs/build/Release/"
for p in bindings file-uri-to-path; do
  mkdir -p "$out/app/node_modules/$p"
  cp "$nm/$p/package.json" "$nm/$p"/*.js "$out/app/node_modules/$p/"
done

# 3. Dawn: the package's entry and its linux-x64 addon, xz'd (the launcher unpacks it).
wg="$out/app/node_modules/webgpu"
mkdir -p "$wg/dist/linux-x64"
cp "$nm/webgpu/package.json" "$nm/webgpu/index.js" "$wg/"
dawn_xz="$cache/dawn-$(sha256sum "$nm/webgpu/dist/linux-x64/dawn.node" | cut -c1-16).node.xz"
if [ ! -f "$dawn_xz" ]; then
  xz -6 -T0 -c "$nm/webgpu/dist/linux-x64/dawn.node" > "$dawn_xz.tmp" && mv "$dawn_xz.tmp" "$dawn_xz"
fi
cp "$dawn_xz" "$wg/dist/linux-x64/dawn.node.xz"

# 4. Node, xz'd once per version (compressing takes ~1-2 minutes on 2 cores).
node_xz="$cache/node-$node_ver-linux-x64.xz"
if [ ! -f "$node_xz" ]; then
  echo "gpu-bundle: compressing $node_bin ($node_ver) with xz -6 ..." >&2
  xz -6 -T0 -c "$node_bin" > "$node_xz.tmp" && mv "$node_xz.tmp" "$node_xz"
fi
cp "$node_xz" "$out/node.xz"

# 5. The Vulkan loader from Debian's libvulkan1 (installed copy if any, else the .deb unpacked in the cache).
vk=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ {print $NF; exit}')
if [ -z "$vk" ]; then
  vkdir="$cache/libvulkan1"
  if ! ls "$vkdir"/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* >/dev/null 2>&1; then
    rm -rf "$vkdir" && mkdir -p "$vkdir"
    (cd "$cache" && rm -f libvulkan1_*.deb && apt-get download libvulkan1 >/dev/null 2>&1) \
      || die "cannot get libvulkan1: apt-get download libvulkan1 failed (run apt-get update, or apt-get install libvulkan1)"
    dpkg -x "$cache"/libvulkan1_*.deb "$vkdir"
  fi
  vk=$(ls "$vkdir"/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* | head -1)
fi
cp -L "$vk" "$out/vulkan/libvulkan.so.1"

# 6. The EGL driver manifest. The library name has no slash, so the loader dlopens it through LD_LIBRARY_PATH,
#    where the launcher puts the driver's folder (its absolute path differs between hosts).
cat > "$out/icd/nvidia_egl_icd.json" <<'EOF'
{
  "file_format_version": "1.0.0",
  "ICD": { "library_path": "libEGL_nvidia.so.0", "api_version": "1.3.0" }
}
EOF

# 7. The datasets (optional: the synthetic task and the benchmarks need none).
if [ "$with_data" = 1 ]; then
  tar -C "$root" -cf - data | xz -6 -T0 > "$out/data.tar.xz"
fi

# 8. The launcher and a stamp the launcher uses to know when its unpacked copy is stale.
cat > "$out/run-on-gpu.sh" <<'LAUNCHER'
#!/usr/bin/env bash
# Runs the bundled mathagent CLI: unpacks Node and Dawn to a scratch folder once per bundle, puts the bundled
# Vulkan loader and the NVIDIA driver's folder on LD_LIBRARY_PATH, selects the EGL driver manifest (the fix for
# "Could not get 'vkCreateInstance'" on headless hosts), then runs `node cli.cjs "$@"` in the caller's folder.
# Environment: MATHAGENT_GPU_SCRATCH (unpack folder, default $TMPDIR/mathagent-gpu-$UID), VK_DRIVER_FILES
# (kept when set), MATHAGENT_GPU_ICD=off (do not select the EGL manifest).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch=${MATHAGENT_GPU_SCRATCH:-${TMPDIR:-/tmp}/mathagent-gpu-$(id -u)}
unxz() { # unxz SRC DST: xz, else Python's lzma (hosts without xz-utils)
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  elif command -v python3 >/dev/null; then python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"
  else echo "run-on-gpu: need xz or python3 to unpack Node" >&2; exit 1; fi
}
if ! cmp -s "$here/STAMP" "$scratch/STAMP" 2>/dev/null; then
  rm -rf "$scratch.tmp" && mkdir -p "$scratch.tmp"
  cp -r "$here/app" "$here/vulkan" "$here/icd" "$scratch.tmp/"
  unxz "$here/node.xz" "$scratch.tmp/node" && chmod +x "$scratch.tmp/node"
  wg="$scratch.tmp/app/node_modules/webgpu/dist/linux-x64"
  unxz "$wg/dawn.node.xz" "$wg/dawn.node" && rm -f "$wg/dawn.node.xz"
  if [ -f "$here/data.tar.xz" ]; then unxz "$here/data.tar.xz" "$scratch.tmp/data.tar" && tar -C "$scratch.tmp" -xf "$scratch.tmp/data.tar" && rm -f "$scratch.tmp/data.tar"; fi
  cp "$here/STAMP" "$scratch.tmp/STAMP"
  rm -rf "$scratch" && mv "$scratch.tmp" "$scratch"
fi
# The NVIDIA driver's library folder (containers often mount it under /usr/local/nvidia/lib64, outside ldconfig).
egl=$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null || true) | awk '/libEGL_nvidia\.so\.0 .*x86-64/ {print $NF; exit}')
if [ -z "$egl" ]; then
  for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64; do
    if [ -e "$d/libEGL_nvidia.so.0" ]; then egl="$d/libEGL_nvidia.so.0"; break; fi
  done
fi
libs="$scratch/vulkan"
[ -n "$egl" ] && libs="$libs:$(dirname "$egl")"
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "$egl" ] && [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ "${MATHAGENT_GPU_ICD:-}" != off ]; then
  export VK_DRIVER_FILES="$scratch/icd/nvidia_egl_icd.json" VK_ICD_FILENAMES="$scratch/icd/nvidia_egl_icd.json"
fi
if [ -z "${MATHAGENT_DATA_DIR:-}" ] && [ -d "$scratch/data/gsm8k" ]; then export MATHAGENT_DATA_DIR="$scratch/data"; fi
# `run-on-gpu.sh --node FILE ARGS...`: run another script with the bundled Node and this GPU environment
# (FILE relative to the bundle is taken from the unpacked copy, e.g. app/cli.cjs).
if [ "${1:-}" = --node ]; then
  shift
  [ $# -ge 1 ] || { echo "run-on-gpu: --node needs a script" >&2; exit 2; }
  f=$1; shift
  [ -e "$scratch/$f" ] && f="$scratch/$f"
  exec "$scratch/node" "$f" "$@"
fi
exec "$scratch/node" "$scratch/app/cli.cjs" "$@"
LAUNCHER
chmod +x "$out/run-on-gpu.sh"
{
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo '+dirty')"
  echo "node $node_ver"
  echo "webgpu $(node -p "require('$nm/webgpu/package.json').version")"
  echo "libvulkan $(basename "$(readlink -f "$vk")")"
  (cd "$out" && find . -type f ! -name STAMP | sort | xargs sha256sum | sha256sum | cut -c1-16)
} > "$out/STAMP"
du -sh "$out" >&2
echo "gpu-bundle: wrote $out (run: $out/run-on-gpu.sh doctor)" >&2
