import ABI
import MachineInterface

/// A tmpfs (shmem) inode with its page cache. Also backs MAP_SHARED|MAP_ANONYMOUS
/// mappings, as shmem_zero_setup() does in the kernel.
///
/// `@unchecked Sendable`: `pages` and `size` are protected by `lock` (the
/// mapping's i_pages lock / inode lock).
final class ShmemInode: @unchecked Sendable {
    private let lock = HostLock()
    private var pages: [UInt64: Folio] = [:]
    private(set) var size: Int
    let pageSize: Int

    init(size: Int, pageSize: Int) {
        self.size = size
        self.pageSize = pageSize
    }

    /// shmem_get_folio(): the page cache folio at `index`, allocated (zeroed)
    /// on first use; nil beyond i_size (SIGBUS).
    func getPage(_ index: UInt64) -> Folio? {
        lock.withLock {
            let limit = UInt64((size + pageSize - 1) / pageSize)
            guard index < limit else { return nil }
            if let f = pages[index] { return f }
            let f = Folio(kind: .pageCache, order: 0, pageSize: pageSize)
            f.mapping = self
            pages[index] = f
            return f
        }
    }

    /// The page cache folio at `index` if it exists (no allocation).
    func cachedPage(_ index: UInt64) -> Folio? {
        lock.withLock { pages[index] }
    }

    /// shmem_file_write_iter().
    func write(_ buffer: UnsafeRawBufferPointer, offset: Int) -> Int {
        guard buffer.count > 0, let base = buffer.baseAddress else { return 0 }
        lock.withLock { size = max(size, offset + buffer.count) }
        var done = 0
        while done < buffer.count {
            let pos = offset + done
            let inPage = pos % pageSize
            let n = min(pageSize - inPage, buffer.count - done)
            let folio = getPage(UInt64(pos / pageSize))!
            (folio.storage.base! + inPage).copyMemory(from: base + done, byteCount: n)
            done += n
        }
        return done
    }

    /// shmem_file_read_iter().
    func read(into buffer: UnsafeMutableRawBufferPointer, offset: Int) -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        let total = max(0, min(buffer.count, size - offset))
        var done = 0
        while done < total {
            let pos = offset + done
            let inPage = pos % pageSize
            let n = min(pageSize - inPage, total - done)
            let existing = lock.withLock { pages[UInt64(pos / pageSize)] }
            if let existing {
                (base + done).copyMemory(from: existing.storage.base! + inPage, byteCount: n)
            } else {
                (base + done).initializeMemory(as: UInt8.self, repeating: 0, count: n)
            }
            done += n
        }
        return done
    }
}

/// An open O_TMPFILE file.
final class SimFile: MachineFile, @unchecked Sendable {
    let inode: ShmemInode
    private let lock = HostLock()
    private var closed = false

    init(inode: ShmemInode) { self.inode = inode }

    func pwrite(_ buffer: UnsafeRawBufferPointer, offset: Int) throws(Errno) -> Int {
        guard !(lock.withLock { closed }) else { throw .EBADF }
        guard offset >= 0 else { throw .EINVAL }
        return inode.write(buffer, offset: offset)
    }

    func pread(into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws(Errno) -> Int {
        guard !(lock.withLock { closed }) else { throw .EBADF }
        guard offset >= 0 else { throw .EINVAL }
        return inode.read(into: buffer, offset: offset)
    }

    func close() throws(Errno) {
        let wasClosed = lock.withLock { () -> Bool in
            defer { closed = true }
            return closed
        }
        if wasClosed { throw .EBADF }
    }
}
