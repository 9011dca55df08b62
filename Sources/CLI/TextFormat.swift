import Syscalls

/// How the reports print numbers and columns: one place for every command.
enum TextFormat {
    /// `value` with `digits` decimals (printf's %.Nf, no Foundation).
    static func fixed(_ value: Double, _ digits: Int = 0) -> String { Sys.format("%.\(digits)f", [value]) }

    /// `text` left-aligned in a column of `width`, always followed by at least one space.
    static func padded(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}
