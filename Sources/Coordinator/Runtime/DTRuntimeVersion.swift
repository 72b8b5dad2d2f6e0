/// The version of dtruntime this coordinator belongs to (kept equal to `python/pyproject.toml`'s).
public enum DTRuntimeVersion {
    /// Semantic version string.
    public static let current = "0.1.0"
}
