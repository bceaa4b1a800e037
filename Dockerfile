# SPDX-License-Identifier: MIT
# tidefs in a container: build on Debian 12, run on Debian 12 slim.
#
#   docker build -t tidefs .
#   docker run --rm --device /dev/fuse --cap-add SYS_ADMIN \
#       --security-opt apparmor:unconfined \
#       -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_REGION \
#       -e TIDEFS_CACHE_SIZE=20G -v tidefs-cache:/var/cache/tidefs \
#       -v /mnt/tidefs:/mnt/data:rshared \
#       tidefs s3://bucket/prefix /mnt/data -o allow_other
#
# See docs/containers.md.

# ---------------------------------------------------------------- build --
FROM debian:12-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
# The Debian packages of scripts/install-deps.sh (keep the two lists the
# same); its Python part (boto3, moto) only serves the test suites.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config clang-format libfuse3-dev fuse3 \
      libcurl4-openssl-dev liblmdb-dev lmdb-utils libssl-dev libjansson-dev \
      libexpat1-dev libcmocka-dev libmicrohttpd-dev attr curl ca-certificates \
      faketime psmisc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDEFS_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --prefix /usr/local

# -------------------------------------------------------------- runtime --
FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      fuse3 libfuse3-3 libcurl4 liblmdb0 libssl3 libjansson4 libexpat1 \
      libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/ /usr/local/
# tidefs, tidefs-volume in /usr/local/bin; mount(8) looks for its helper in
# /sbin (= /usr/sbin on Debian 12).
RUN ln -s /usr/local/sbin/mount.tidefs /usr/sbin/mount.tidefs \
 && mkdir -p /mnt/data /var/cache/tidefs
ENV TIDEFS_CACHE_DIR=/var/cache/tidefs
VOLUME ["/var/cache/tidefs"]
# tidefs -f unmounts cleanly on SIGTERM (docker stop) and SIGINT, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tidefs", "-f"]
CMD ["--help"]
