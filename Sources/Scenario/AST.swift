import ABI

// The scenario language's syntax tree. One `Statement` per line of a file;
// `fork` holds the statements of its block, and `expect` lines are attached to
// the statement they follow. The grammar is in docs/scenarios.md; the canonical
// text of every node is `ScenarioPrinter`'s.

/// A parsed scenario: its statements in file order.
public struct Scenario: Hashable, Sendable {
    /// Where it came from (a path, `<stdin>`, or a generated name), for messages.
    public var name: String
    /// The top-level statements, in file order.
    public var statements: [Statement]

    public init(name: String, statements: [Statement]) {
        self.name = name
        self.statements = statements
    }
}

/// One operation, where it was written, and the expectations on its result.
public struct Statement: Hashable, Sendable {
    public var operation: Operation
    /// The line of the operation (1-based); 0 for a statement not read from text.
    public var line: Int
    /// For `fork`: the line of the closing `}`.
    public var endLine: Int
    public var expectations: [Expectation]

    public init(_ operation: Operation, line: Int = 0, endLine: Int = 0, expectations: [Expectation] = []) {
        self.operation = operation
        self.line = line
        self.endLine = endLine
        self.expectations = expectations
    }
}

/// An `expect` line: every field must hold of the result of the statement before it.
public struct Expectation: Hashable, Sendable {
    public var fields: [ExpectField]
    public var line: Int

    public init(_ fields: [ExpectField], line: Int = 0) {
        self.fields = fields
        self.line = line
    }
}

/// One field of an `expect` line.
public enum ExpectField: Hashable, Sendable {
    /// The operation succeeded.
    case ok
    /// It failed with this errno (its kernel name, e.g. EINVAL).
    case errno(String)
    case cpages(UInt64)
    case faults(UInt64)
    /// The data read (load, read, migrate_to_dev, exclusive, read_unlocked) equals the pattern over the range.
    case data(Pattern)
    /// The data read has this FNV-1a 64 digest.
    case digest(UInt64)
    /// SNAPSHOT's bytes, run-length encoded as in the result line (`20x8 01`).
    case snapshot(String)
    /// A CPU access ended the process with this signal (SIGSEGV, SIGBUS); after `}`, the child did.
    case signal(String)
    /// After `}`: the child's exit status.
    case exit(Int32)
    /// The operation did not run (its mapping or file was never created).
    case skipped
}

/// `NAME`, `NAME[N]` or `NAME[A:B]`: pages of a named mapping (half-open, 0-based).
public struct PageRange: Hashable, Sendable {
    public enum Form: Hashable, Sendable {
        /// The whole mapping.
        case whole
        /// One page.
        case page(Int)
        /// Pages [start, end).
        case span(Int, Int)
    }

    public var mapping: String
    public var form: Form

    public init(_ mapping: String, _ form: Form = .whole) {
        self.mapping = mapping
        self.form = form
    }

    /// The first page and the page count, for a mapping of `pages` pages.
    public func resolved(mappingPages pages: Int) -> (start: Int, count: Int) {
        switch form {
        case .whole: (0, pages)
        case .page(let n): (n, 1)
        case .span(let a, let b): (a, b - a)
        }
    }
}

/// A data pattern: what a store or a device write puts in each page, as a
/// function of the page's index in its mapping (so a page that moves to the
/// wrong place is noticed) and of the byte's offset in the page.
public enum Pattern: Hashable, Sendable {
    /// All zero bytes.
    case zero
    /// Every byte the same.
    case fill(UInt8)
    /// 32-bit little-endian words counting up from `base`: word w of page p holds
    /// p * (pageSize / 4) + w + base (hmm-tests' `ptr[i] = i`).
    case seq(UInt32)
    /// 64-bit words from a hash of the seed and the word's index.
    case rand(UInt64)
}

/// mmap's backing (mmap's fd argument).
public enum MapSource: Hashable, Sendable {
    /// MAP_ANONYMOUS.
    case anon
    /// A temporary file made by a `file` statement.
    case file(String)
    /// MAP_HUGETLB (anonymous, default huge page size).
    case hugetlb
    /// The dmirror device file itself (dmirror_fops_mmap).
    case device(String)
}

/// PROT_* as a word: `none`, or some of r, w, x in that order.
public struct Prot: Hashable, Sendable {
    public var read: Bool
    public var write: Bool
    public var exec: Bool

    public init(read: Bool, write: Bool, exec: Bool = false) {
        self.read = read
        self.write = write
        self.exec = exec
    }

    public static let none = Prot(read: false, write: false)
    public static let r = Prot(read: true, write: false)
    public static let rw = Prot(read: true, write: true)

    /// The mmap/mprotect argument.
    public var protection: Protection {
        var p: Protection = []
        if read { p.insert(.read) }
        if write { p.insert(.write) }
        if exec { p.insert(.exec) }
        return p
    }

    /// A CPU load does not fault on permissions (x86: any access right allows reads).
    public var allowsLoad: Bool { read || write || exec }
}

/// `mmap NAME PAGES SOURCE [OPTION...]`.
public struct MmapSpec: Hashable, Sendable {
    public var name: String
    public var pages: Int
    public var source: MapSource
    public var shared = false
    public var prot = Prot.rw
    /// File offset, in pages.
    public var offset = 0
    /// Map at a PMD-aligned address (THP-eligible ranges).
    public var alignPMD = false
    /// MAP_POPULATE.
    public var populate = false
    /// madvise right after mmap: MADV_HUGEPAGE (true) or MADV_NOHUGEPAGE (false).
    public var hugepage: Bool?

    public init(name: String, pages: Int, source: MapSource) {
        self.name = name
        self.pages = pages
        self.source = source
    }
}

/// madvise(2) advice words.
public enum AdviceWord: String, Hashable, Sendable, CaseIterable {
    case hugepage, nohugepage, dontneed, free, collapse

    /// The madvise(2) value.
    public var advice: Advice {
        switch self {
        case .hugepage: .hugePage
        case .nohugepage: .noHugePage
        case .dontneed: .dontNeed
        case .free: .free
        case .collapse: .collapse
        }
    }
}

/// `mremap RANGE NEWNAME PAGES [maymove] [dontunmap] [to=NAME[N]]`.
public struct MremapSpec: Hashable, Sendable {
    public var range: PageRange
    public var newName: String
    public var pages: Int
    public var mayMove = false
    public var dontUnmap = false
    /// MREMAP_FIXED (with MAYMOVE) to this page of a named mapping.
    public var target: PageRange?

    public init(range: PageRange, newName: String, pages: Int) {
        self.range = range
        self.newName = newName
        self.pages = pages
    }
}

/// The dmirror commands that act on a page range.
public enum RangeCommand: String, Hashable, Sendable, CaseIterable {
    case read
    case migrateToDevice = "migrate_to_dev"
    case migrateToSystem = "migrate_to_sys"
    case snapshot
    case exclusive
    case checkExclusive = "check_exclusive"
    case readUnlocked = "read_unlocked"

    /// The dmirror command it issues.
    public var command: DmirrorCommand {
        switch self {
        case .read: .read
        case .migrateToDevice: .migrateToDevice
        case .migrateToSystem: .migrateToSystem
        case .snapshot: .snapshot
        case .exclusive: .exclusive
        case .checkExclusive: .checkExclusive
        case .readUnlocked: .readUnlocked
        }
    }
}

/// A raw ioctl's request: a command of the active ABI, a number, or `_IOC(dir, 'H', nr, size)`.
public enum RawRequest: Hashable, Sendable {
    case command(DmirrorCommand)
    case number(UInt64)
    /// dir: 0 none, 1 write, 2 read, 3 read-write (asm-generic/ioctl.h).
    case encoded(nr: UInt64, size: UInt64, dir: UInt64)
}

/// A raw ioctl's address: a page of a named mapping plus a byte offset, or a number.
public enum RawAddress: Hashable, Sendable {
    case page(PageRange, plus: UInt64)
    case number(UInt64)
}

/// `ioctl FILE REQUEST [addr=ADDR] [npages=N] [ptr=buffer|null]`.
public struct RawIoctl: Hashable, Sendable {
    public var file: String
    public var request: RawRequest
    public var address: RawAddress = .number(0)
    public var npages: UInt64 = 1
    /// ptr: a buffer dmirror provides (npages pages), or NULL.
    public var nullPointer = false

    public init(file: String, request: RawRequest) {
        self.file = file
        self.request = request
    }
}

/// What a statement does.
public indirect enum Operation: Hashable, Sendable {
    /// `open FILE UNIT`: open /dev/hmm_dmirrorUNIT as FILE.
    case open(file: String, unit: Int)
    /// `close FILE`.
    case close(file: String)
    /// `file NAME PAGES [PATTERN]`: a temporary (tmpfs) file, optionally filled.
    case tempFile(name: String, pages: Int, fill: Pattern?)
    case mmap(MmapSpec)
    case munmap(PageRange)
    case mprotect(PageRange, Prot)
    case madvise(PageRange, AdviceWord)
    case mremap(MremapSpec)
    /// A CPU load of every byte of the range.
    case load(PageRange)
    /// A CPU store of the pattern over the range.
    case store(PageRange, Pattern)
    /// `fork {` ... `}`: the child runs the block; the parent waits for it.
    case fork([Statement])
    /// A dmirror command on a range: read, migrate_to_dev, ...
    case command(RangeCommand, file: String, range: PageRange)
    /// HMM_DMIRROR_WRITE of the pattern over the range.
    case write(file: String, range: PageRange, pattern: Pattern)
    /// HMM_DMIRROR_RELEASE (addr 0 and npages 1 without a range).
    case release(file: String, range: PageRange?)
    /// HMM_DMIRROR_FLAGS with this flag word.
    case flags(file: String, value: UInt64)
    case ioctl(RawIoctl)
}
