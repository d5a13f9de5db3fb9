package ddbtrack

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Exponential returns a retry delay, for [Config].RetryDelay, that starts
// at base after the first failure and doubles with each further failure in
// a row, up to max. Each delay is then lengthened by up to half at random,
// so that tasks that failed together, because a dependency went down, do
// not all come back at the same moment. Exponential(0, 0) retries at once.
func Exponential(base, max time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		if base <= 0 {
			return base
		}
		d := base
		for i := 1; i < n && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d + rand.N(d/2+1)
	}
}

// checkRetryDelay calls a retry delay policy for the attempts it will see
// and reports a negative answer, which would make a task due in the past.
func checkRetryDelay(field string, delay func(int) time.Duration, maxAttempts int) error {
	for n := 1; n <= maxAttempts; n++ {
		if d := delay(n); d < 0 {
			return optionError(field, fmt.Sprintf("returns %v after %d failed attempts", d, n), "return 0 or more; 0 retries at once")
		}
	}
	return nil
}

// pause is the growing wait after errors from DynamoDB: the worker pool's
// between failed reads, and a write's between failed tries. It grows as
// Exponential does, from 100ms up to a cap.
type pause struct {
	delay func(int) time.Duration
	n     int
}

func newPause(limit time.Duration) *pause {
	return &pause{delay: Exponential(100*time.Millisecond, limit)}
}

// next returns the wait after one more error in a row.
func (p *pause) next() time.Duration {
	p.n++
	return p.delay(p.n)
}

// reset starts over after a success.
func (p *pause) reset() { p.n = 0 }
