#!/bin/busybox sh
# dmirror lab: PID 1 of the guest initramfs built by scripts/lab.
#
# It mounts the pseudo file systems the suites need and the host's results share
# (virtio-9p, tag "labshare", at /share), checks that the memory reserved for the
# coherent devices is real RAM marked reserved, loads test_hmm (or checks the
# built-in one), runs the cases the host listed in /share/todo/kselftest one by one
# with the kernel's hmm-tests, then the cases in /share/todo/dmirror with one
# `dmirror run --backend kernel --kmsg-markers --format jsonl`, unloads test_hmm and
# powers off. Every result is written straight into /share/results, so what finished
# is on the host even if the kernel panics; the host boots a fresh guest for the rest.
#
# Settings come from /lab/config (written by scripts/lab):
#   LAB_MODE=run|shell  LAB_SPM0=0x... LAB_SPM1=0x...  LAB_TEST_HMM=m|y
#   LAB_TEST_TIMEOUT=<seconds per C case>  LAB_TRACE=0|1  LAB_THP=<the cell's THP mode>
#   LAB_C_WHOLE=0|1 (1: the C suite's harness has no -r, so hmm-tests runs once)

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/lab
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts /root /share
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug
# kprobe events for dmirror --count-walks (a kernel without tracing has no tracefs)
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null

. /lab/config

kmsg() { echo "dmirror-lab: $*" > /dev/kmsg; }
# shell builtins only: the C suite's per-case loop must not pay for extra processes
uptime_s() { read -r up _ < /proc/uptime; echo "$up"; }

kmsg "init start uptime=$(uptime_s)"

# No share means no results; say so on the console (the host reads it) and stop.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 labshare /share; then
	kmsg "FATAL the results share (virtio-9p) did not mount"
	reboot -f
fi
R=/share/results
mkdir -p "$R/kselftest"
: > "$R/notes.txt"
note() { echo "$*" >> "$R/notes.txt"; kmsg "$*"; }

# ---------------------------------------------------------------- environment
{
	echo "uname: $(uname -a)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "cpus: $(nproc)"
	echo "thp: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
	echo "nr_hugepages: $(cat /proc/sys/vm/nr_hugepages 2>/dev/null)"
	echo "gup_test: $(test -e /sys/kernel/debug/gup_test && echo present || echo missing)"
	echo "numa_nodes: $(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)"
	grep -E '^(MemTotal|MemFree|HugePages_Total|HugePages_Free|Hugepagesize)' /proc/meminfo
} > "$R/env.txt" 2>&1
cp /proc/iomem "$R/iomem.txt"

# The suite's hugetlb tests want at least one free default huge page.
if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" -lt 2 ]; then
	echo 4 > /proc/sys/vm/nr_hugepages 2>/dev/null
fi

# ------------------------------------------------- coherent device memory check
# A range [start, start+256MiB) is usable as special purpose memory when
#  - the firmware reported it as RAM (BIOS-e820 lines in the log),
#  - the kernel's own map after memmap=...$... calls it reserved ("user:" lines),
#  - /proc/iomem shows it as "Reserved" and no "System RAM" overlaps it.
# A built-in test_hmm has already mapped it at boot; the checks are the same.
SPM_SIZE=$((256 * 1024 * 1024))

# covers PREFIX PATTERN START: is [START, START+256MiB) inside one [mem a-b] line?
covers() {
	s=$(($3)); e=$((s + SPM_SIZE - 1))
	dmesg -s 67108864 | grep "$1: \[mem " | grep -E "$2" |
		sed 's/.*\[mem 0x\([0-9a-f]*\)-0x\([0-9a-f]*\)\].*/\1 \2/' |
		while read -r a b; do
			if [ $((0x$a)) -le $s ] && [ $((0x$b)) -ge $e ]; then echo yes; fi
		done | grep -q yes
}

# iomem_check START: prints "reserved", "ram" (overlaps System RAM) or "absent"
iomem_check() {
	s=$(($1)); e=$((s + SPM_SIZE - 1)); verdict=absent
	while IFS= read -r line; do
		case "$line" in " "*) continue ;; esac
		range=${line%% : *}; name=${line#* : }
		a=$((0x${range%-*})); b=$((0x${range#*-}))
		case "$name" in
		"System RAM") if [ $a -le $e ] && [ $b -ge $s ]; then echo ram; return; fi ;;
		Reserved) if [ $a -le $s ] && [ $b -ge $e ]; then verdict=reserved; fi ;;
		esac
	done < /proc/iomem
	echo $verdict
}

SPM_OK=1
for a in "$LAB_SPM0" "$LAB_SPM1"; do
	if [ -z "$a" ]; then SPM_OK=0; note "spm: no address given"; continue; fi
	if ! covers BIOS-e820 'usable|System RAM' "$a"; then SPM_OK=0; note "spm: $a is not inside the RAM the firmware gave this guest (BIOS-e820)"; fi
	if ! covers user 'reserved' "$a"; then SPM_OK=0; note "spm: $a is not reserved in the kernel's e820 map (memmap= missing?)"; fi
	case $(iomem_check "$a") in
	reserved) ;;
	ram) SPM_OK=0; note "spm: $a overlaps System RAM in /proc/iomem" ;;
	*) SPM_OK=0; note "spm: $a is not shown as Reserved in /proc/iomem" ;;
	esac
done
echo "$SPM_OK" > "$R/spm.ok"
[ "$SPM_OK" = 1 ] && note "spm: $LAB_SPM0 and $LAB_SPM1 are reserved RAM (256 MiB each)"

# ------------------------------------------------------------ test_hmm
if [ "$LAB_TEST_HMM" = y ]; then
	# built in: the addresses came on the command line (test_hmm.spm_addr_devN=)
	p=/sys/module/test_hmm/parameters
	note "test_hmm: built in; spm_addr_dev0=$(cat $p/spm_addr_dev0 2>/dev/null) spm_addr_dev1=$(cat $p/spm_addr_dev1 2>/dev/null)"
	{ cat $p/spm_addr_dev0; cat $p/spm_addr_dev1; } > "$R/builtin-spm.txt" 2>&1
	echo 0 > "$R/insmod.rc"
else
	kmsg "BEGIN lab insmod"
	if [ "$SPM_OK" = 1 ]; then
		insmod /lab/test_hmm.ko spm_addr_dev0="$LAB_SPM0" spm_addr_dev1="$LAB_SPM1" > "$R/insmod.txt" 2>&1
	else
		insmod /lab/test_hmm.ko > "$R/insmod.txt" 2>&1
	fi
	echo $? > "$R/insmod.rc"
	kmsg "END lab insmod rc=$(cat "$R/insmod.rc")"
	sleep 1
fi
ls -l /dev/hmm_dmirror* > "$R/devices.txt" 2>&1
note "devices: $(ls /dev/hmm_dmirror* 2>/dev/null | tr '\n' ' ')"

if [ "$LAB_MODE" = shell ]; then
	echo
	echo "dmirror lab shell: test_hmm is ready; /lab holds hmm-tests and dmirror."
	echo "Try: hmm-tests -r hmm.hmm_device_private.migrate ; dmirror run --backend kernel"
	echo "Leave with: exit (or reboot -f)"
	setsid cttyhack sh
	reboot -f
fi

# The todo lists are read line by line; from tmpfs, not with a 9p round trip per byte.
mkdir -p /tmp/todo
cp /share/todo/kselftest /share/todo/dmirror /tmp/todo/ 2>/dev/null

# stop_boot WHY: the kernel is no longer fit to run more cases; the host boots a fresh
# guest and goes on from the next case (nothing after this point runs in this boot)
stop_boot() {
	kmsg "STOP $*"
	dmesg -s 67108864 > "$R/dmesg.txt" 2>&1
	sync
	reboot -f
}

# died: whether the kernel has oopsed (taint flag D, 128) in this boot
died() { read -r taint < /proc/sys/kernel/tainted; [ $((taint & 128)) != 0 ]; }

# stuck_tasks: pids of the suites' processes in uninterruptible sleep: a case whose
# process the harness gave up on (its own timeout) while it hangs in the kernel, holding
# what the next cases need
stuck_tasks() {
	for f in $(grep -l '^State:.*D (disk sleep)' /proc/[0-9]*/status 2>/dev/null); do
		d=${f%/status}
		read -r comm < "$d/comm" 2>/dev/null
		case "$comm" in hmm-tests|dmirror) printf '%s ' "${d#/proc/}" ;; esac
	done
}

# ------------------------------------------------------ the kernel's C suite
# One process per case, as kselftest runs them: markers in the kernel log, the
# case's TAP in NAME.out, `name rc t0 t1` (guest uptime) in kselftest.rc.
#
# A harness without -r (6.1) runs every case in one process: its output is cut into
# cases here, at each "#  RUN" line and the result line after it. The harness flushes
# stdout before it forks each case, so a RUN line arrives as its case starts and the
# previous case's result arrives after that case's process was reaped.
run_whole_suite() {
	cur=""
	/lab/hmm-tests 2>&1 < /dev/null | while IFS= read -r line; do
		case "$line" in
		"#  RUN           "*)
			cur=${line#"#  RUN           "}; cur=${cur% ...}
			read -r t0 _ < /proc/uptime
			kmsg "BEGIN kselftest $cur"
			: > "$R/kselftest/$cur.out" ;;
		esac
		[ -n "$cur" ] && echo "$line" >> "$R/kselftest/$cur.out"
		case "$line" in
		"ok "*"# SKIP"*) rc=4 ;;
		"ok "*) rc=0 ;;
		"not ok "*) rc=1 ;;
		*) continue ;;
		esac
		[ -n "$cur" ] || continue
		stuck=""
		[ "$rc" = 1 ] && stuck=$(stuck_tasks)
		kmsg "END kselftest $cur rc=$rc"
		read -r t1 _ < /proc/uptime
		echo "$cur $rc $t0 $t1" >> "$R/kselftest.rc"
		died && stop_boot "fault kselftest $cur"
		[ -n "$stuck" ] && stop_boot "hang kselftest $cur (tasks in D state: $stuck)"
		cur=""
	done
}

if [ -s /tmp/todo/kselftest ] && [ "$LAB_C_WHOLE" = 1 ]; then
	n=$(grep -c . /tmp/todo/kselftest)
	kmsg "SUITE kselftest cases=$n start uptime=$(uptime_s)"
	run_whole_suite
	kmsg "SUITE kselftest end uptime=$(uptime_s)"
elif [ -s /tmp/todo/kselftest ]; then
	n=$(grep -c . /tmp/todo/kselftest)
	kmsg "SUITE kselftest cases=$n start uptime=$(uptime_s)"
	while read -r name; do
		[ -n "$name" ] || continue
		read -r t0 _ < /proc/uptime
		kmsg "BEGIN kselftest $name"
		timeout -s KILL "$LAB_TEST_TIMEOUT" /lab/hmm-tests -r "$name" > "$R/kselftest/$name.out" 2>&1 < /dev/null
		rc=$?
		read -r t1 _ < /proc/uptime
		# only a failed case can have left a task behind (the harness's timeout, ours)
		stuck=""
		case "$rc" in 0|4) ;; *) stuck=$(stuck_tasks) ;; esac
		kmsg "END kselftest $name rc=$rc"
		echo "$name $rc $t0 $t1" >> "$R/kselftest.rc"
		# the case oopsed the kernel, or left a task stuck in the kernel: later cases would
		# run on a broken kernel or hang behind it
		died && stop_boot "fault kselftest $name"
		[ -n "$stuck" ] && stop_boot "hang kselftest $name (tasks in D state: $stuck)"
	done < /tmp/todo/kselftest
	kmsg "SUITE kselftest end uptime=$(uptime_s)"
fi

# lockdep reports once per boot and then turns itself off; when it did so during the C
# suite, dmirror's cases get a fresh boot with lockdep on again. Reading lockdep_stats
# takes seconds under TCG, so only after a report banner (a line of "=") in the log.
if [ -s /tmp/todo/dmirror ] && dmesg -s 67108864 | grep -qE '^\[[ 0-9.]+\] ={20,}$' &&
	grep -q 'debug_locks: *0' /proc/lockdep_stats 2>/dev/null; then
	stop_boot "lockdep-off (it reported during the C suite)"
fi

# ------------------------------------------------------------------- dmirror
# One process for every case: each case is a forked child, and dmirror writes the
# BEGIN/END markers itself (END after the case's process was reaped, so splats of
# its exit land inside), and a JSON line per case as it ends.
if [ -s /tmp/todo/dmirror ]; then
	set -- /lab/dmirror run --backend kernel --kmsg-markers --format jsonl
	[ "$LAB_TRACE" = 1 ] && set -- "$@" --trace "$R/dmirror-traces"
	n=0
	while read -r name; do
		[ -n "$name" ] || continue
		set -- "$@" -r "$name"
		n=$((n + 1))
	done < /tmp/todo/dmirror
	[ "$LAB_TRACE" = 1 ] && mkdir -p "$R/dmirror-traces"
	t0=$(uptime_s)
	kmsg "SUITE dmirror cases=$n start uptime=$t0"
	"$@" > "$R/dmirror.jsonl" 2> "$R/dmirror.err" < /dev/null
	rc=$?
	t1=$(uptime_s)
	kmsg "SUITE dmirror end uptime=$t1"
	echo "$rc $t0 $t1" > "$R/dmirror.rc"
	# the host ends the boot on a fault; if it has not yet, the unload must not count
	died && stop_boot "fault in the dmirror suite (a case oopsed the kernel)"
fi

# ------------------------------------------------------------------ extras
# After both suites, before the unload, in the boot that got this far: /lab/extra.sh
# (scripts/lab run --extras or --guest-script FILE), in $R/extra, output in extra.out.
if [ -x /lab/extra.sh ]; then
	mkdir -p "$R/extra"
	kmsg "BEGIN lab extra uptime=$(uptime_s)"
	(cd "$R/extra" && /lab/extra.sh) > "$R/extra.out" 2>&1 < /dev/null
	echo $? > "$R/extra.rc"
	kmsg "END lab extra rc=$(cat "$R/extra.rc") uptime=$(uptime_s)"
	died && stop_boot "fault in the extras"
fi

# ------------------------------------------------------------------ rmmod
# A case killed by a timeout may still be tearing down its mm (and dropping device
# pages) for a moment, so try a few times. rmmod runs in the background: with a
# device page reference leaked, memunmap_pages() waits forever, and that is a finding.
if [ "$LAB_TEST_HMM" = m ]; then
	kmsg "BEGIN lab rmmod"
	: > "$R/rmmod.txt"
	tries=0
	while :; do
		tries=$((tries + 1))
		echo "try $tries: refcnt=$(cat /sys/module/test_hmm/refcnt 2>/dev/null)" >> "$R/rmmod.txt"
		rmmod test_hmm >> "$R/rmmod.txt" 2>&1 &
		pid=$!
		waited=0
		while [ -d /proc/$pid ] && [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)" != Z ] && [ $waited -lt 75 ]; do
			sleep 1
			waited=$((waited + 1))
		done
		if [ $waited -ge 75 ]; then
			rc=hung
			echo "rmmod still running after 75 s (state $(cut -d' ' -f3 /proc/$pid/stat), wchan $(cat /proc/$pid/wchan 2>/dev/null))" >> "$R/rmmod.txt"
			break
		fi
		wait $pid
		rc=$?
		[ "$rc" = 0 ] && break
		if [ "$tries" = 1 ]; then ps >> "$R/rmmod.txt" 2>&1; fi
		[ "$tries" -ge 10 ] && break
		sleep 3
	done
	echo "$rc" > "$R/rmmod.rc"
	echo "$tries" > "$R/rmmod.tries"
	kmsg "END lab rmmod rc=$rc tries=$tries"
	lsmod > "$R/lsmod.txt" 2>&1
fi

# ------------------------------------------------------------ done
kmsg "done uptime=$(uptime_s)"
dmesg -s 67108864 > "$R/dmesg.txt" 2>&1
sync
umount /share 2>/dev/null
# no ACPI sleep support in the guest, so power-off would only halt: reboot,
# which qemu (-no-reboot) turns into an exit
reboot -f
