# SPDX-License-Identifier: MIT
# Container integration: the mount(8) helper (scripts/mount.tidefs).
# The Docker volume plugin (tidefs-volume) is built and installed by
# api/CMakeLists.txt.
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/mount.tidefs DESTINATION sbin)
