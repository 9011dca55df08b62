/* Thin wrappers; see dmirror_shim.h. Every failure is returned as -errno. */
#define _GNU_SOURCE
#include "dmirror_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mman.h>
#include <linux/userfaultfd.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

const int dmirror_shim_MAP_FIXED_NOREPLACE = MAP_FIXED_NOREPLACE;
const int dmirror_shim_MREMAP_MAYMOVE = MREMAP_MAYMOVE;
const int dmirror_shim_MREMAP_FIXED = MREMAP_FIXED;
const int dmirror_shim_MREMAP_DONTUNMAP = MREMAP_DONTUNMAP;
const int dmirror_shim_MADV_COLLAPSE = MADV_COLLAPSE;
const int dmirror_shim_O_TMPFILE = O_TMPFILE;
const int dmirror_shim_M_TRIM_THRESHOLD = M_TRIM_THRESHOLD;
const int dmirror_shim_M_TOP_PAD = M_TOP_PAD;
const int dmirror_shim_M_MMAP_THRESHOLD = M_MMAP_THRESHOLD;

int dmirror_shim_mallopt(int param, int value)
{
	return mallopt(param, value);
}

int dmirror_shim_ioctl_cmd(int fd, unsigned long request, struct dmirror_cmd *cmd)
{
	return ioctl(fd, request, cmd) < 0 ? -errno : 0;
}

int dmirror_shim_ioctl_ptr(int fd, unsigned long request, void *arg)
{
	int ret = ioctl(fd, request, arg);
	return ret < 0 ? -errno : ret;
}

intptr_t dmirror_shim_mremap(void *old_address, size_t old_size, size_t new_size,
			     int flags, void *new_address)
{
	void *p = mremap(old_address, old_size, new_size, flags, new_address);
	return p == MAP_FAILED ? -(intptr_t)errno : (intptr_t)p;
}

int dmirror_shim_userfaultfd(int flags)
{
	long fd = syscall(__NR_userfaultfd, flags);
	return fd < 0 ? -errno : (int)fd;
}

int dmirror_shim_open(const char *path, int flags, unsigned int mode)
{
	int fd = open(path, flags, (mode_t)mode);
	return fd < 0 ? -errno : fd;
}

int dmirror_shim_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

pid_t dmirror_shim_fork(void)
{
	pid_t pid = fork();
	return pid < 0 ? -errno : pid;
}

void dmirror_shim_spin_forever(void)
{
	for (;;)
		__asm__ volatile("" ::: "memory");
}

int dmirror_shim_new_process_group(void)
{
	return setpgid(0, 0) < 0 ? -errno : 0;
}

int dmirror_shim_uffd_api(int uffd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	return ioctl(uffd, UFFDIO_API, &api) < 0 ? -errno : 0;
}

int dmirror_shim_uffd_register_missing(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int dmirror_shim_uffd_wait(int uffd, int stop_fd, struct dmirror_uffd_fault *out)
{
	struct pollfd fds[2] = {
		{ .fd = uffd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	struct uffd_msg msg;

	for (;;) {
		int n = poll(fds, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (fds[1].revents)
			return 0;
		if (!(fds[0].revents & POLLIN))
			return -EIO;
		ssize_t got = read(uffd, &msg, sizeof(msg));
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got != (ssize_t)sizeof(msg))
			return got < 0 ? -errno : -EIO;
		out->address = msg.event == UFFD_EVENT_PAGEFAULT ? msg.arg.pagefault.address : 0;
		out->flags = msg.event == UFFD_EVENT_PAGEFAULT ? msg.arg.pagefault.flags : 0;
		return 1;
	}
}

int dmirror_shim_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len)
{
	struct uffdio_copy copy = {
		.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = 0, .copy = 0,
	};
	return ioctl(uffd, UFFDIO_COPY, &copy) < 0 ? -errno : 0;
}

/* The layout of mm/gup_test.h's struct gup_test (80 bytes on x86_64). */
struct dmirror_gup_test {
	uint64_t get_delta_usec;
	uint64_t put_delta_usec;
	uint64_t addr;
	uint64_t size;
	uint32_t nr_pages_per_call;
	uint32_t gup_flags;
	uint32_t test_flags;
	uint32_t which_pages[8];
};
_Static_assert(sizeof(struct dmirror_gup_test) == 80, "struct gup_test is 80 bytes");

int dmirror_shim_gup_test(int fd, int which, uint64_t addr, uint64_t size,
			  uint32_t gup_flags, uint32_t nr_pages_per_call)
{
	struct dmirror_gup_test gup = {
		.addr = addr, .size = size,
		.nr_pages_per_call = nr_pages_per_call, .gup_flags = gup_flags,
	};
	unsigned long request = (3ul << 30) | ((unsigned long)sizeof(gup) << 16) |
				((unsigned long)'g' << 8) | (unsigned long)which;
	return ioctl(fd, request, &gup) < 0 ? -errno : 0;
}
