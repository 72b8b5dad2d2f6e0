import Foundation
import Testing

@testable import dtr

@Suite("Table: aligned columns under headers")
struct TableTests {
    @Test("columns are as wide as their widest cell, three spaces apart; right-aligned ones pad on the left")
    func alignment() {
        var table = Table([.init("RANK", .right), .init("WORKER"), .init("STATUS")])
        table.append(["0", "worker-0", "healthy"])
        table.append(["12", "w1", "dead"])
        #expect(
            table.render() == """
                RANK   WORKER     STATUS
                   0   worker-0   healthy
                  12   w1         dead

                """)
    }

    @Test("no trailing spaces, short rows padded, extra cells dropped, line breaks inside cells flattened")
    func edges() {
        var table = Table([.init("A"), .init("B"), .init("C")])
        table.append(["x"])
        table.append(["y", "two\nlines", "z", "dropped"])
        let lines = table.render().split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines == ["A   B           C", "x", "y   two lines   z", ""])
        #expect(lines.allSatisfy { !$0.hasSuffix(" ") })
    }

    @Test("colours wrap a cell's text without changing the alignment; plain style writes none")
    func colours() {
        var table = Table([.init("STATUS"), .init("X")])
        table.append([Table.Cell("ok", colour: .green), "1"])
        table.append([Table.Cell("failed", colour: .red), "2"])
        let coloured = table.render(style: Style(colour: true))
        #expect(coloured.contains("\u{1B}[32mok\u{1B}[0m       1"))
        let stripped = coloured.replacing(/\x{1B}\[[0-9;]*m/, with: "")
        #expect(stripped == table.render())
        #expect(!table.render().contains("\u{1B}"))
    }

    @Test("NO_COLOR and TERM=dumb turn colours off")
    func noColour() {
        #expect(!Style.forStandardOutput(environment: ["NO_COLOR": "1"]).colour)
        #expect(!Style.forStandardOutput(environment: ["TERM": "dumb"]).colour)
    }
}
