package ddbtrack

// Exported for the external tests of the package only.
var (
	ItemSize   = itemSize
	NumberSize = numberSize
)

// SchedClock is the clock that Process schedules its reads by.
type SchedClock = schedClock

// SetSchedClock makes t's pools schedule their reads by c, for the tests
// that run the schedule by hand.
func SetSchedClock[S Status](t *Tracker[S], c SchedClock) { t.sched = c }
