package ddbtrack

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// spread is what a pool knows of where the due tasks of a crowded index
// partition lie, so that it can read from a random point among them rather
// than from the partition's head, which every other pool reads too.
//
// Points are drawn in due time, the first part of the index's sort key.
// Due times say little about where tasks are: a job created in a burst
// fills a sliver of the time between its first task and now, and a fleet
// working through a partition leaves stretches with nothing left. So the
// points are bounded by the first and last due tasks, which two reads of
// one item tell, every read reports the stretch it found empty, and points
// are drawn only outside the stretches known empty.
type spread struct {
	lo, hi int64  // due times in epoch milliseconds, inclusive, between which the tasks lie
	gaps   []span // stretches found empty, in order, disjoint
}

// newSpread returns a spread of tasks due from first on.
func newSpread(first int64) spread { return spread{lo: first, hi: math.MaxInt64} }

// span is a stretch of due times in epoch milliseconds, from inclusive,
// to exclusive.
type span struct{ from, to int64 }

// draw returns a due time up to now at random among those not known
// empty, or false if none is left.
func (s *spread) draw(now int64) (int64, bool) {
	top := min(s.hi, now) + 1
	left := top - s.lo
	for _, g := range s.gaps {
		left -= max(min(g.to, top)-g.from, 0)
	}
	if left <= 0 {
		return 0, false
	}
	at := s.lo + rand.Int64N(left)
	for _, g := range s.gaps {
		if at < g.from {
			break
		}
		at += g.to - g.from
	}
	return at, true
}

// empty records that no task is due from from to to.
func (s *spread) empty(from, to int64) {
	from, to = max(from, s.lo), min(to, s.hi+1)
	if from >= to {
		return
	}
	i, _ := slices.BinarySearchFunc(s.gaps, from, func(g span, at int64) int { return cmp.Compare(g.to, at) })
	j := i
	for j < len(s.gaps) && s.gaps[j].from <= to {
		from, to = min(from, s.gaps[j].from), max(to, s.gaps[j].to)
		j++
	}
	s.gaps = slices.Replace(s.gaps, i, j, span{from, to})
}
