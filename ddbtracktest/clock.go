package ddbtracktest

import (
	"sync"
	"time"
)

// Clock is a clock that a test moves by hand. Give its Now method to
// Config.Now, and a test can expire leases and check stored times without
// sleeping:
//
//	var clock ddbtracktest.Clock
//	tr := ddbtracktest.New(t, ddbtrack.Config[Status]{..., Now: clock.Now})
//	clock.Advance(time.Hour) // Past the default 15-minute lease of any running task.
//
// The zero Clock reads 2026-01-01 12:00:00 UTC until it is moved: a fixed,
// ordinary instant, so stored times look real and are the same on every run. It is safe for concurrent use: trackers read it from
// their workers' goroutines. Time stands still between moves, so the
// trackers see no time pass while a task runs.
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	moved bool
}

// clockStart is what a zero [Clock] reads.
var clockStart = time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

// Advance moves the clock forward by d, or back for a negative d, and
// returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.moved = c.nowLocked().Add(d), true
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.moved = t, true
}

func (c *Clock) nowLocked() time.Time {
	if !c.moved {
		return clockStart
	}
	return c.now
}
