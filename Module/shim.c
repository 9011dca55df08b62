/* Thin wrappers; see dmirror_shim.h. Every failure is returned as -errno. */
#define _GNU_SOURCE
#include "dmirror_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <malloc.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434 /* the same on every architecture (Linux 5.3) */
#endif
#ifndef __NR_process_mrelease
#define __NR_process_mrelease 448 /* the same on every architecture (Linux 5.15) */
#endif

int dmirror_sys_ioctl(int fd, unsigned long request, void *arg)
{
	int ret = ioctl(fd, request, arg);
	return ret < 0 ? -errno : ret;
}

intptr_t dmirror_sys_mremap(void *old_address, size_t old_size, size_t new_size,
			    int flags, void *new_address)
{
	void *p = mremap(old_address, old_size, new_size, flags, new_address);
	return p == MAP_FAILED ? -(intptr_t)errno : (intptr_t)p;
}

pid_t dmirror_sys_fork(void)
{
	pid_t pid = fork();
	return pid < 0 ? -errno : pid;
}

int dmirror_sys_userfaultfd(int flags)
{
	long fd = syscall(__NR_userfaultfd, flags);
	return fd < 0 ? -errno : (int)fd;
}

int dmirror_sys_pidfd_open(pid_t pid)
{
	long fd = syscall(__NR_pidfd_open, pid, 0);
	return fd < 0 ? -errno : (int)fd;
}

int dmirror_sys_process_mrelease(int pidfd)
{
	long ret = syscall(__NR_process_mrelease, pidfd, 0);
	return ret < 0 ? -errno : 0;
}

long dmirror_sys_getrandom(void *buffer, size_t length)
{
	ssize_t n = getrandom(buffer, length, 0);
	return n < 0 ? -errno : n;
}

int dmirror_sys_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

const int dmirror_UAPI_O_TMPFILE = O_TMPFILE;

const int dmirror_M_TRIM_THRESHOLD = M_TRIM_THRESHOLD;
const int dmirror_M_TOP_PAD = M_TOP_PAD;
const int dmirror_M_MMAP_THRESHOLD = M_MMAP_THRESHOLD;

int dmirror_sys_mallopt(int param, int value)
{
	return mallopt(param, value);
}

unsigned int dmirror_dev_major(dev_t dev)
{
	return major(dev);
}

unsigned int dmirror_dev_minor(dev_t dev)
{
	return minor(dev);
}

const char *dmirror_errno_name(int err)
{
	return strerrorname_np(err);
}

void dmirror_spin_forever(void)
{
	for (;;)
		__asm__ volatile("" ::: "memory");
}

int dmirror_uffd_api(int uffd)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	return ioctl(uffd, UFFDIO_API, &api) < 0 ? -errno : 0;
}

int dmirror_uffd_register_missing(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int dmirror_uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len)
{
	struct uffdio_copy copy = {
		.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = 0, .copy = 0,
	};
	return ioctl(uffd, UFFDIO_COPY, &copy) < 0 ? -errno : 0;
}

const size_t dmirror_uffd_msg_size = sizeof(struct uffd_msg);

uint64_t dmirror_uffd_msg_fault_address(const void *raw)
{
	const struct uffd_msg *msg = raw;
	return msg->event == UFFD_EVENT_PAGEFAULT ? msg->arg.pagefault.address : 0;
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

int dmirror_gup_test(int fd, int which, uint64_t addr, uint64_t size,
		     uint32_t gup_flags, uint32_t nr_pages_per_call)
{
	struct dmirror_gup_test gup = {
		.addr = addr, .size = size,
		.nr_pages_per_call = nr_pages_per_call, .gup_flags = gup_flags,
	};
	/* _IOWR('g', which, struct gup_test) */
	unsigned long request = (3ul << 30) | ((unsigned long)sizeof(gup) << 16) |
				((unsigned long)'g' << 8) | (unsigned long)which;
	return ioctl(fd, request, &gup) < 0 ? -errno : 0;
}
