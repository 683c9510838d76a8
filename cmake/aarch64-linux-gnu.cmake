# SPDX-License-Identifier: LGPL-2.1-or-later
# Cross-building slotsync for arm64 on a Debian (amd64) machine:
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#
# The compiler is Debian's cross compiler (gcc-aarch64-linux-gnu); the
# libraries are Debian's own arm64 packages installed through multiarch
# (dpkg --add-architecture arm64; apt-get install libzstd-dev:arm64 ...), so
# their headers and libraries sit in /usr/include/aarch64-linux-gnu and
# /usr/lib/aarch64-linux-gnu beside the host's, and the cross compiler finds
# them there by itself: no sysroot.  scripts/install-deps.sh --arm64 installs
# all of it, and scripts/cross-build.sh uses this file.
#
# Test programs run under qemu-user (qemu-user-static): ctest starts each one
# through CMAKE_CROSSCOMPILING_EMULATOR, and the arm64 dynamic loader and
# libraries come from the same multiarch packages.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(SLOTSYNC_CROSS_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${SLOTSYNC_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${SLOTSYNC_CROSS_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${SLOTSYNC_CROSS_TRIPLET})

# pkg-config reads only the arm64 .pc files (and the architecture-independent
# ones), never the host's: a host library found here would link the wrong
# architecture, or silently turn a feature on that the target lacks.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${SLOTSYNC_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Libraries and headers only from the target's directories; programs (scdoc,
# the host's tools) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${SLOTSYNC_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(SLOTSYNC_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(SLOTSYNC_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${SLOTSYNC_QEMU_AARCH64})
endif()
