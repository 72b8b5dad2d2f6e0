import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// An element of one of S3's small XML documents (listings, errors, delete results), parsed into a tree so the store
/// reads fields by name instead of driving a SAX parser per response type.
///
/// Namespaces are ignored (S3 puts everything in one default namespace), and so is mixed content: an element's text
/// is the concatenation of its direct text.
struct S3XMLElement: Sendable, Equatable {
    var name: String
    var text: String = ""
    var children: [S3XMLElement] = []

    /// The first child element called `name`.
    func child(_ name: String) -> S3XMLElement? {
        children.first { $0.name == name }
    }

    /// Every child element called `name`, in document order.
    func children(_ name: String) -> [S3XMLElement] {
        children.filter { $0.name == name }
    }

    /// The text of the first child called `name`, or nil when there is no such child.
    subscript(_ name: String) -> String? {
        child(name)?.text
    }

    /// Parses a document and returns its root element, or nil when the bytes are not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> S3XMLElement? {
        let parser = XMLParser(data: Data(bytes))
        let builder = TreeBuilder()
        parser.delegate = builder
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        guard parser.parse() else { return nil }
        return builder.root
    }

    /// Builds the tree from the parser's callbacks. Lives only for one synchronous `parse()` call.
    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var stack: [S3XMLElement] = []
        var root: S3XMLElement?

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
        ) {
            stack.append(S3XMLElement(name: elementName))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += string
        }

        func parser(
            _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
            qualifiedName qName: String?
        ) {
            guard let element = stack.popLast() else { return }
            if stack.isEmpty {
                root = element
            } else {
                stack[stack.count - 1].children.append(element)
            }
        }
    }
}
