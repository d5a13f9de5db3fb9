package ddbtrack

import "time"

// schedClock is the time that Process's feeder schedules its reads by:
// when a partition is due for a read, how long candidates stay fresh, how
// long to sleep. It is the real clock, but for the tests of the schedule,
// which run it by hand together with Config.Now, so that an idle pool's
// reads over minutes are counted exactly without waiting minutes.
type schedClock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a
	// function that stops it.
	After(d time.Duration) (<-chan time.Time, func())
}

// realClock is the schedClock of every pool outside those tests.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}
