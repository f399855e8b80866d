// Package otabench measures over-the-air updates (issue 7) and writes
// bench/results/ota.txt, or the file named by -args -ota.out FILE:
//
//   - install throughput: ota/install streaming an image (256 MiB by
//     default) from a local HTTP server into a file-backed slot
//     (ota/install/blockdev: fsync every 4 MiB, page cache dropped, the
//     whole image read back and hashed), against writing the same bytes to
//     the same filesystem sequentially with one fsync, in the same run;
//   - delta savings: two root-filesystem images a release apart (roomd and
//     roomctl built from two commits of this repository, their config and
//     unit files, /etc/os-release, over a fixed set of this machine's
//     Debian packages standing in for the image's base), packed as squashfs
//     (mksquashfs, zstd, fixed timestamps) and as ext4 (mkfs.ext4 -d, fixed
//     UUID and hash seed), with ota/delta's size and Make and Apply times.
//
// It needs git, go (with the C libraries roomd links), mksquashfs
// (squashfs-tools) and mkfs.ext4 (e2fsprogs); a missing one fails the
// benchmark. One invocation is the whole report:
//
//	go test -run '^$' -bench OTA -benchtime 1x -timeout 30m ./test/otabench/
package otabench
