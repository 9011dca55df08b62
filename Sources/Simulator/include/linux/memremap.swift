// include/linux/memremap.h: ZONE_DEVICE memory a driver hands to the mm.

/// enum memory_type (the ZONE_DEVICE kinds test_hmm uses).
enum MemoryType: Sendable {
    /// MEMORY_DEVICE_PRIVATE: not CPU addressable; the CPU faults through migrate_to_ram().
    case devicePrivate
    /// MEMORY_DEVICE_COHERENT: CPU addressable device memory.
    case deviceCoherent
}

/// struct dev_pagemap_ops: what the mm calls back into the driver for.
protocol DevPagemapOps: AnyObject, Sendable {
    /// migrate_to_ram(): the CPU touched a device-private page at `address`
    /// (`ptMapped`: through a PTE, so only that page moves). `.done` when the
    /// fault should be retried against the new entry.
    func migrateToRam(mm: MMStruct, vma: VMArea, address: UInt64, page: PageRef, ptMapped: Bool) -> VMFault
    /// folio_free(): the last reference to a ZONE_DEVICE folio went away.
    func folioFree(_ folio: Folio)
}

/// struct dev_pagemap: one range of device memory and its owner.
///
/// `@unchecked Sendable`: the fields are set once, when the driver creates it.
class DevPagemap: @unchecked Sendable {
    let type: MemoryType
    /// The first PFN, and one past the last.
    let pfnFirst: UInt64
    let pfnLast: UInt64
    /// pgmap->owner: what migrate_vma's pgmap_owner and hmm_range's
    /// dev_private_owner are compared with.
    unowned let owner: AnyObject
    unowned let ops: any DevPagemapOps

    init(type: MemoryType, pfnFirst: UInt64, pfnLast: UInt64, owner: AnyObject, ops: any DevPagemapOps) {
        self.type = type
        self.pfnFirst = pfnFirst
        self.pfnLast = pfnLast
        self.owner = owner
        self.ops = ops
    }
}
