// The random scenarios behind `dmirror fuzz`: valid by construction (every
// name defined before its use, every range inside its mapping), deterministic
// (the same seed and index give the same scenario, byte for byte, on any
// machine: the generator has its own PRNG and never iterates a hash table),
// and weighted towards the states where the kernel's mm and the driver meet:
// PMD-aligned THP ranges and partial unmaps of them, several devices (private
// and coherent) at once, FAIL_ALLOC, exclusive entries, RELEASE, fork after
// migration, PROT_NONE holes, mremap of migrated pages.

/// xoshiro256** seeded through SplitMix64: small, fast, and the same everywhere.
public struct ScenarioRandom {
    var s: (UInt64, UInt64, UInt64, UInt64)

    /// The generator for `seed`: its state is four SplitMix64 outputs of the seed.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            return Pattern.mix(x)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// The next 64 random bits (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in 0..<n (n > 0), by multiply-shift (no modulo bias worth the name at these sizes).
    public mutating func below(_ n: Int) -> Int {
        Int((UInt128(next()) * UInt128(UInt64(n))) >> 64)
    }

    /// Uniform in the closed range.
    public mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

    /// True with probability `percent`%.
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    /// An index into `weights`, chosen in proportion to them.
    public mutating func weighted(_ weights: [Int]) -> Int {
        let total = weights.reduce(0, +)
        guard total > 0 else { return 0 }
        var pick = below(total)
        for (k, w) in weights.enumerated() {
            if pick < w { return k }
            pick -= w
        }
        return weights.count - 1
    }

    public mutating func element<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Makes random scenarios.
public struct ScenarioGenerator {
    /// How many operations a scenario has (fork bodies count their own), besides its setup.
    public var length: Int

    public init(length: Int) {
        self.length = length
    }

    /// Scenario `index` of the run seeded `seed`: independent of every other index, so
    /// one failing scenario can be made again alone.
    public func scenario(seed: UInt64, index: Int) -> Scenario {
        var random = ScenarioRandom(seed: Pattern.mix(seed ^ Pattern.mix(UInt64(index) &+ 0x5CE7_A210)))
        var model = GenModel()
        var statements: [Statement] = []
        model.setup(&random, into: &statements)
        var budget = length
        while budget > 0 {
            budget -= model.step(&random, into: &statements, depth: 0, budget: budget)
        }
        model.teardown(&random, into: &statements)
        return Scenario(name: Self.name(seed: seed, index: index), statements: statements)
    }

    /// `fuzz-<seed>-<index>`.
    public static func name(seed: UInt64, index: Int) -> String { "fuzz-\(seed)-\(index)" }

    /// The scenario's canonical text, parsed back: every generated statement gets its line number,
    /// and a generator bug (an invalid statement) shows as a parse error here.
    public func numbered(seed: UInt64, index: Int) throws(ScenarioError) -> Scenario {
        let made = scenario(seed: seed, index: index)
        var parsed = try ScenarioParser.parse(ScenarioPrinter.print(made), file: made.name)
        parsed.name = made.name
        return parsed
    }
}
