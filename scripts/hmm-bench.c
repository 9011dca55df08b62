// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of `dmirror bench`: the same dmirror ioctls in a plain loop, built
 * against the tested tree's lib/test_hmm_uapi.h (so the request numbers are that
 * kernel's), run in the same boot. Prints "OPERATION on|off NS" per line, NS the
 * median over the repeats of the mean time per call, for `dmirror bench --compare`.
 *
 * usage: hmm-bench [ITERATIONS [REPEATS]]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "test_hmm_uapi.h"

#define PMD_BYTES (2UL << 20)

static int fd;
static void *buffer;
static void *mirror;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static int command(unsigned long request, unsigned long npages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)buffer,
		.ptr = (uintptr_t)mirror,
		.npages = npages,
	};

	while (ioctl(fd, request, &cmd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int read_1(void) { return command(HMM_DMIRROR_READ, 1); }
static int write_1(void) { return command(HMM_DMIRROR_WRITE, 1); }
static int snapshot_1(void) { return command(HMM_DMIRROR_SNAPSHOT, 1); }
static int snapshot_512(void) { return command(HMM_DMIRROR_SNAPSHOT, 512); }

static int roundtrip(unsigned long npages)
{
	int ret = command(HMM_DMIRROR_MIGRATE_TO_DEV, npages);

	return ret ? ret : command(HMM_DMIRROR_MIGRATE_TO_SYS, npages);
}

static int roundtrip_1(void) { return roundtrip(1); }
static int roundtrip_512(void) { return roundtrip(512); }

/* The names `dmirror bench` uses (Sources/Bench/Benchmarks.swift). */
static const struct {
	const char *name;
	int (*run)(void);
} operations[] = {
	{ "read-1", read_1 },
	{ "write-1", write_1 },
	{ "snapshot-1", snapshot_1 },
	{ "snapshot-512", snapshot_512 },
	{ "migrate-roundtrip-1", roundtrip_1 },
	{ "migrate-roundtrip-512", roundtrip_512 },
};

/* A 2 MiB buffer aligned to 2 MiB, THP or not, populated by the CPU. */
static void *map_buffer(int thp)
{
	char *raw = mmap(NULL, 2 * PMD_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *aligned;

	if (raw == MAP_FAILED)
		return NULL;
	aligned = (char *)(((uintptr_t)raw + PMD_BYTES - 1) & ~(PMD_BYTES - 1));
	if (aligned > raw)
		munmap(raw, aligned - raw);
	if (raw + 2 * PMD_BYTES > aligned + PMD_BYTES)
		munmap(aligned + PMD_BYTES, raw + 2 * PMD_BYTES - (aligned + PMD_BYTES));
	madvise(aligned, PMD_BYTES, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (unsigned long i = 0; i < PMD_BYTES / sizeof(int); i++)
		((int *)aligned)[i] = (int)i;
	return aligned;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long iterations = argc > 1 ? atol(argv[1]) : 2000;
	long repeats = argc > 2 ? atol(argv[2]) : 7;
	double *times;

	if (iterations < 1 || repeats < 1) {
		fprintf(stderr, "usage: %s [ITERATIONS [REPEATS]]\n", argv[0]);
		return 1;
	}
	fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0) {
		perror("/dev/hmm_dmirror0");
		return 4;
	}
	mirror = aligned_alloc(4096, PMD_BYTES);
	times = calloc(repeats, sizeof(*times));
	if (!mirror || !times)
		return 1;
	memset(mirror, 0, PMD_BYTES);
	for (int thp = 0; thp <= 1; thp++) {
		for (size_t op = 0; op < sizeof(operations) / sizeof(operations[0]); op++) {
			long warmup = iterations / 10 ? iterations / 10 : 1;
			int ret = 0;

			buffer = map_buffer(thp);
			if (!buffer) {
				perror("mmap");
				return 1;
			}
			for (long i = 0; i < warmup && !ret; i++)
				ret = operations[op].run();
			for (long r = 0; r < repeats && !ret; r++) {
				uint64_t start = now_ns();

				for (long i = 0; i < iterations && !ret; i++)
					ret = operations[op].run();
				times[r] = (double)(now_ns() - start) / iterations;
			}
			if (ret) {
				printf("# %s %s failed: %s\n", operations[op].name, thp ? "on" : "off", strerror(-ret));
			} else {
				qsort(times, repeats, sizeof(*times), compare);
				printf("%s %s %.1f\n", operations[op].name, thp ? "on" : "off", times[repeats / 2]);
			}
			munmap(buffer, PMD_BYTES);
		}
	}
	return 0;
}
