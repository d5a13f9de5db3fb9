package ddbtrack

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSpread: points are drawn only where tasks may be due, gaps merge as
// reads find them, and a spread with nothing left says so.
func TestSpread(t *testing.T) {
	t.Parallel()
	s := newSpread(100)
	s.hi = 199
	s.empty(120, 130)
	s.empty(150, 160)
	s.empty(125, 150) // joins the two
	s.empty(0, 105)   // clipped to the spread
	s.empty(195, 300)
	require.Equal(t, []span{{100, 105}, {120, 160}, {195, 200}}, s.gaps)
	seen := map[int64]bool{}
	for range 5000 {
		at, ok := s.draw(1000)
		require.True(t, ok)
		require.True(t, at >= 105 && at < 120 || at >= 160 && at < 195, "drew %d, in a gap", at)
		seen[at] = true
	}
	require.Len(t, seen, 15+35, "every free millisecond is drawn")

	// Now bounds the draw: tasks due later are not due yet.
	for range 100 {
		at, ok := s.draw(110)
		require.True(t, ok)
		require.True(t, at >= 105 && at <= 110, "drew %d", at)
	}
	s.empty(100, 200)
	_, ok := s.draw(1000)
	require.False(t, ok, "nothing left to draw from")
}
