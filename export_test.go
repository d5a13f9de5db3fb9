package ddbtrack

// Exported for the external tests of the package only.
var (
	ItemSize   = itemSize
	NumberSize = numberSize
)
