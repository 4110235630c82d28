#!/usr/bin/env bash
# Optional fast path: build dlib from the PyPI source release against OpenBLAS,
# with the SIMD flags that keep the HOG detector fast, into a private folder.
#
#   scripts/build-fast-dlib.sh [TARGET_DIR]        # default: .cache/dlib-fast
#   SOZY_ENGINE_DLIB_PATH=.cache/dlib-fast python -m sozy.crawl ...
#
# The default install (the dlib-bin wheel) needs no compiler; this build needs
# cmake, a C++ compiler and libopenblas-dev (apt-get install cmake g++
# libopenblas-dev) and takes about 5-6 minutes on 2 cores. Nothing is
# installed into the virtual environment: the engine's workers put TARGET_DIR
# first on sys.path (engine.dlib_path), and run OpenBLAS on one thread each.
#
# Environment knobs:
#   DLIB_VERSION   source release to build (default 20.0.0)
#   PYTHON         interpreter to build for (default: python3 on PATH)
#   DLIB_NATIVE=0  leave out -march=native (for a build copied to other CPUs)
#   JOBS           parallel compile jobs (default: number of cores)
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-$repo_root/.cache/dlib-fast}"
version="${DLIB_VERSION:-20.0.0}"
python="${PYTHON:-python3}"
jobs="${JOBS:-$(nproc)}"
work="$(mktemp -d "${TMPDIR:-/tmp}/dlib-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "build-fast-dlib: '$tool' is needed (apt-get install cmake g++)" >&2; exit 1; }
done
if ! compgen -G "/usr/lib/*/libopenblas.so" >/dev/null && ! compgen -G "/usr/lib/libopenblas.so" >/dev/null; then
    echo "build-fast-dlib: OpenBLAS not found (apt-get install libopenblas-dev)" >&2
    exit 1
fi

echo "build-fast-dlib: fetching dlib $version source from PyPI"
"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$work" "dlib==$version"
tar -xzf "$work"/dlib-"$version".tar.gz -C "$work"
src="$work/dlib-$version"

# Why these flags. dlib's CMake turns AVX on by itself only when it is built
# through setup.py, and only for its own sources; -O3 and -march=native let
# the compiler vectorise the HOG feature and pyramid loops as well, which is
# where a plain OpenBLAS build lost to the dlib-bin wheel. OpenBLAS does the
# ResNet descriptor's matrix products (the 5x win).
cxx_flags="-O3"
if [ "${DLIB_NATIVE:-1}" != "0" ]; then
    cxx_flags="$cxx_flags -march=native"
fi

mkdir -p "$target"
target="$(cd "$target" && pwd)"
echo "build-fast-dlib: configuring (OpenBLAS, AVX, $cxx_flags) → $target"
cmake -S "$src/tools/python" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="$cxx_flags -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELEASE="$cxx_flags -DNDEBUG" \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$target" \
    -DPYTHON_EXECUTABLE="$(command -v "$python")" \
    -DDLIB_USE_FFMPEG=OFF \
    -DDLIB_USE_CUDA="${DLIB_USE_CUDA:-OFF}" \
    -DUSE_SSE4_INSTRUCTIONS=ON \
    -DUSE_AVX_INSTRUCTIONS=ON \
    -DDLIB_USE_BLAS=ON \
    -DDLIB_USE_LAPACK=ON >"$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; exit 1; }
grep -E "BLAS|LAPACK|AVX|SSE4" "$work/configure.log" | sed 's/^/  /' || true

echo "build-fast-dlib: compiling with $jobs jobs (several minutes)"
cmake --build "$work/build" --config Release -- -j"$jobs" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 1; }

# The build writes _dlib_pybind11*.so and dlib/__init__.py into the target.
OPENBLAS_NUM_THREADS=1 PYTHONPATH="$target" "$python" -c "
import dlib, sys
assert dlib.__file__.startswith('$target'), dlib.__file__
print('build-fast-dlib: built dlib', dlib.__version__, 'BLAS', dlib.DLIB_USE_BLAS, 'AVX', dlib.USE_AVX_INSTRUCTIONS, 'in', '$target')
"
echo "build-fast-dlib: use it with SOZY_ENGINE_DLIB_PATH=$target (or [engine] dlib_path in config/sozy.toml)"
