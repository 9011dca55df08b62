import ABI
import Harness
import MachineInterface

// The dmirror side of a scenario: opening and closing device files, the typed
// commands on page ranges, and raw ioctls with any request and size.

extension ScenarioRunner {
    /// Most pages a raw ioctl's buffer gets (1 GiB); beyond, ptr is NULL (the
    /// driver's copy then fails with EFAULT instead of writing past a buffer).
    static let rawBufferPages: UInt64 = 262_144

    func withDevice(_ name: String, _ p: ProcessState, _ body: (DeviceHandle) -> Outcome) -> Outcome {
        guard case .device(let handle, let why)? = p.values[name] else {
            return Outcome(OperationResult(.skipped("\(name) is not a device file here")))
        }
        guard let handle else { return Outcome(OperationResult(.skipped("\(name): \(why)"))) }
        return body(handle)
    }

    func open(_ name: String, unit: Int, in p: ProcessState) -> Outcome {
        do throws(Errno) {
            let device = try p.machine.openMirror(unit: unit)
            let handle = DeviceHandle(device: device, unit: unit, owner: p)
            p.ownDevices.append(handle)
            state.openFiles[unit, default: 0] += 1
            p.values[name] = .device(handle, why: "")
            return Outcome(.ok)
        } catch {
            p.values[name] = .device(nil, why: "open failed")
            return Outcome(OperationResult(.errno(error)))
        }
    }

    func close(_ name: String, in p: ProcessState, violations: inout [String]) -> Outcome {
        withDevice(name, p) { handle in
            p.values[name] = .device(nil, why: "closed")
            // A child closing the descriptor it inherited closes only its copy: the file stays open.
            guard handle.owner === p else { return Outcome(.ok) }
            p.ownDevices.removeAll { $0 === handle }
            let (error, problems) = closeDevice(handle, in: p)
            violations += problems
            return Outcome(error.map { OperationResult(.errno($0)) } ?? .ok)
        }
    }

    /// close(2) of a file this process opened; after a device's last close none of its pages may be left.
    func closeDevice(_ handle: DeviceHandle, in p: ProcessState) -> (Errno?, [String]) {
        var failure: Errno?
        do throws(Errno) { try handle.device.close() } catch { failure = error }
        state.openFiles[handle.unit, default: 1] -= 1
        guard checking(p), state.openFiles[handle.unit] == 0 else { return (failure, []) }
        return (failure, devicePagesLeft(handle.unit, p, after: "its last file closed"))
    }

    /// Called from `finishProcess`.
    func close(_ handle: DeviceHandle, in p: ProcessState) -> [String] {
        closeDevice(handle, in: p).1
    }

    func devicePagesLeft(_ unit: Int, _ p: ProcessState, after what: String) -> [String] {
        let left = p.introspection?.allocatedDevicePages()[unit] ?? 0
        return left == 0 ? [] : ["device \(unit) still has \(left) page(s) allocated after \(what)"]
    }

    /// Issues `command` and turns its outcome into a result.
    func perform(_ h: DeviceHandle, _ command: DmirrorCommand, addr: UInt64, ptr: UInt64, npages: UInt64) -> Outcome {
        do throws(DmirrorError) {
            let done = try h.device.perform(command, addr: addr, ptr: ptr, npages: npages)
            return Outcome(OperationResult(.ok, cpages: done.cpages, faults: done.faults))
        } catch {
            switch error {
            case .failed(_, let errno): return Outcome(OperationResult(.errno(errno)))
            case .unsupported(let command, let abi):
                return Outcome(OperationResult(.unsupported("\(command.kernelName) is not in the \(abi)")))
            }
        }
    }

    func rangeCommand(_ command: RangeCommand, file: String, range: PageRange, in p: ProcessState,
                      violations: inout [String]) -> Outcome {
        withDevice(file, p) { h in
            withRange(range, p) { r in
                let ps = p.pageSize
                switch command {
                case .migrateToSystem, .checkExclusive:
                    return perform(h, command.command, addr: r.address, ptr: 0, npages: UInt64(r.count))
                case .snapshot:
                    return withBuffer(r.count) { buffer in
                        var outcome = perform(h, .snapshot, addr: r.address, ptr: address(buffer), npages: UInt64(r.count))
                        if outcome.result.status == .ok, let cpages = outcome.result.cpages {
                            let n = Int(min(cpages, UInt64(r.count)))
                            outcome.result.snapshot = TraceFormat.runLength(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                        }
                        return outcome
                    }
                case .read, .readUnlocked, .migrateToDevice, .exclusive:
                    return withBuffer(r.count * ps) { buffer in
                        var outcome = perform(h, command.command, addr: r.address, ptr: address(buffer), npages: UInt64(r.count))
                        if command == .exclusive {
                            for k in 0..<UInt64(r.count) { h.owner.shadow.breakCOW(r.vpn + k) }
                        }
                        if outcome.result.status == .ok, let cpages = outcome.result.cpages {
                            let n = Int(min(cpages, UInt64(r.count)))
                            let data = UnsafeRawBufferPointer(rebasing: buffer[0..<(n * ps)])
                            outcome.result.digest = TraceFormat.digest(data)
                            outcome.dataPages = (r.first, n)
                            if checking(h.owner) {
                                violations += ShadowChecker(state: state, process: h.owner)
                                    .checkData(data, vpn: r.vpn, pages: n, what: "the device's \(command.rawValue)")
                            }
                        }
                        return outcome
                    }
                }
            }
        }
    }

    func deviceWrite(_ file: String, _ range: PageRange, _ pattern: Pattern, in p: ProcessState) -> Outcome {
        withDevice(file, p) { h in
            withRange(range, p) { r in
                let ps = p.pageSize
                return withBuffer(r.count * ps) { buffer in
                    for k in 0..<r.count {
                        pattern.fill(page: r.first + k, into: UnsafeMutableRawBufferPointer(rebasing: buffer[(k * ps)..<((k + 1) * ps)]))
                    }
                    let outcome = perform(h, .write, addr: r.address, ptr: address(buffer), npages: UInt64(r.count))
                    // A failed write may have written a prefix before it failed.
                    let certain = outcome.result.status == .ok
                    for k in 0..<r.count { h.owner.shadow.write(r.vpn + UInt64(k), pageData(pattern, r.first + k), certain: certain) }
                    return outcome
                }
            }
        }
    }

    func release(_ file: String, _ range: PageRange?, in p: ProcessState, violations: inout [String]) -> Outcome {
        withDevice(file, p) { h in
            var addr: UInt64 = 0, npages: UInt64 = 1
            if let range {
                guard case .success(let r) = resolve(range, p) else {
                    return Outcome(OperationResult(.skipped("\(range.mapping): not mapped")))
                }
                addr = r.address
                npages = UInt64(r.count)
            }
            let outcome = perform(h, .release, addr: addr, ptr: 0, npages: npages)
            if outcome.result.status == .ok && checking(p) {
                violations += devicePagesLeft(h.unit, p, after: "RELEASE")
            }
            return outcome
        }
    }

    func rawIoctl(_ raw: RawIoctl, in p: ProcessState, violations: inout [String]) -> Outcome {
        withDevice(raw.file, p) { h in
            let abi = h.device.abi
            let request: UInt
            switch raw.request {
            case .command(let command):
                guard let r = abi.request(for: command) else {
                    return Outcome(OperationResult(.unsupported("\(command.kernelName) is not in the \(abi)")))
                }
                request = r
            case .number(let n): request = UInt(n)
            case .encoded(let nr, let size, let dir): request = UInt((dir << 30) | (size << 16) | (0x48 << 8) | nr)
            }
            var addr: UInt64
            switch raw.address {
            case .number(let n): addr = n
            case .page(let page, let plus):
                guard case .success(let r) = resolve(page, p) else {
                    return Outcome(OperationResult(.skipped("\(page.mapping): not mapped")))
                }
                addr = r.address &+ plus
            }
            let ps = UInt64(p.pageSize)
            let pages = raw.nullPointer || raw.npages > Self.rawBufferPages ? 0 : Int(max(raw.npages, 1))
            return withBuffer(pages * Int(ps)) { buffer in
                var cmd = DmirrorCmd(addr: addr, ptr: pages == 0 ? 0 : address(buffer), npages: raw.npages)
                let result = h.device.file.ioctl(request: request, &cmd)
                let command = abi.command(forRequest: request)
                guard case .success = result else {
                    if case .failure(let e) = result {
                        if command == .write { rawWriteShadow(h, addr: addr, npages: raw.npages, certain: false) }
                        return Outcome(OperationResult(.errno(e)))
                    }
                    return Outcome(.ok)
                }
                var outcome = Outcome(OperationResult(.ok, cpages: cmd.cpages, faults: cmd.faults))
                let n = Int(min(cmd.cpages, UInt64(pages)))
                switch command {
                case .snapshot?:
                    outcome.result.snapshot = TraceFormat.runLength(UnsafeRawBufferPointer(rebasing: buffer[0..<min(n, buffer.count)]))
                case .read?, .readUnlocked?, .migrateToDevice?, .exclusive?:
                    let data = UnsafeRawBufferPointer(rebasing: buffer[0..<(n * Int(ps))])
                    outcome.result.digest = TraceFormat.digest(data)
                    if checking(h.owner) && addr % ps == 0 {
                        violations += ShadowChecker(state: state, process: h.owner)
                            .checkData(data, vpn: addr / ps, pages: n, what: "the device's raw read")
                    }
                case .write?:
                    rawWriteShadow(h, addr: addr, npages: raw.npages, certain: true)
                default: break
                }
                return outcome
            }
        }
    }

    /// A raw WRITE writes the (zero) buffer.
    func rawWriteShadow(_ h: DeviceHandle, addr: UInt64, npages: UInt64, certain: Bool) {
        let ps = UInt64(state.pageSize)
        guard addr % ps == 0 else { return }
        for k in 0..<min(npages, Self.rawBufferPages) { h.owner.shadow.write(addr / ps + k, .zero, certain: certain) }
    }

    /// A zero-filled host buffer for the driver's ptr, from `options.buffers`.
    func withBuffer(_ bytes: Int, _ body: (UnsafeMutableRawBufferPointer) -> Outcome) -> Outcome {
        guard bytes > 0 else { return body(UnsafeMutableRawBufferPointer(start: nil, count: 0)) }
        guard let buffer = options.buffers.allocate(bytes) else { return Outcome(OperationResult(.errno(.ENOMEM))) }
        defer { options.buffers.release(buffer) }
        return body(buffer)
    }

    func address(_ buffer: UnsafeMutableRawBufferPointer) -> UInt64 {
        UInt64(UInt(bitPattern: buffer.baseAddress))
    }
}
