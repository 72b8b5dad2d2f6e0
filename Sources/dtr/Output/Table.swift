/// Rows of text aligned under upper-case headers, as `kubectl get` prints them: columns separated by three spaces,
/// numbers right-aligned where the caller says so, no trailing spaces. Colours apply to a cell's text only, so they
/// never disturb alignment.
struct Table: Sendable {
    /// Where a column's text sits in its width.
    enum Alignment: Sendable {
        case left
        case right
    }

    /// A column: its header and alignment.
    struct Column: Sendable {
        var header: String
        var alignment: Alignment

        init(_ header: String, _ alignment: Alignment = .left) {
            self.header = header
            self.alignment = alignment
        }
    }

    /// One cell: its text, and a colour for terminals.
    struct Cell: Sendable, ExpressibleByStringLiteral {
        var text: String
        var colour: Colour?

        init(_ text: String, colour: Colour? = nil) {
            // A line break inside a cell would break the row: tables show one line per row.
            self.text = text.replacing("\r\n", with: " ").replacing("\n", with: " ")
            self.colour = colour
        }

        init(stringLiteral value: String) {
            self.init(value)
        }
    }

    /// The columns, left to right.
    var columns: [Column]
    /// The rows; a row with fewer cells than columns is padded with empty ones, extra cells are dropped.
    var rows: [[Cell]] = []

    init(_ columns: [Column]) {
        self.columns = columns
    }

    /// Appends a row.
    mutating func append(_ row: [Cell]) {
        rows.append(row)
    }

    /// The table as lines ending in a newline: the header line, then one line per row.
    func render(style: Style = .plain) -> String {
        let cells = rows.map { row in
            (0..<columns.count).map { index in index < row.count ? row[index] : Cell("") }
        }
        let widths = columns.indices.map { index in
            cells.reduce(columns[index].header.count) { width, row in max(width, row[index].text.count) }
        }
        let header = columns.map { Cell($0.header) }
        return ([header] + cells).map { row in line(row, widths: widths, style: style) }.joined()
    }

    private func line(_ row: [Cell], widths: [Int], style: Style) -> String {
        var line = ""
        for (index, cell) in row.enumerated() {
            let padding = String(repeating: " ", count: widths[index] - cell.text.count)
            let text = style.paint(cell.text, cell.colour)
            let last = index == row.count - 1
            if index > 0 { line += "   " }
            switch columns[index].alignment {
            case .left: line += last ? text : text + padding
            case .right: line += padding + text
            }
        }
        // An empty last cell leaves the separator behind.
        while line.hasSuffix(" ") { line.removeLast() }
        return line + "\n"
    }
}
