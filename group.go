package ddbtrack

import (
	"context"
	"sync"
)

// fanOutLimit bounds the requests that a query, count or bulk operation has
// in flight at once: enough to keep a connection pool busy without
// tripping a table's burst capacity.
const fanOutLimit = 16

// fanOut calls fn for 0 ≤ i < n with at most limit calls at once, the one
// bounded fan-out of the package. The first error cancels the context of
// the other calls, stops starting new ones, and is returned. It is what
// errgroup's SetLimit does, in a few lines that spare every user of the
// library a dependency on golang.org/x/sync.
func fanOut(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg   sync.WaitGroup
		once sync.Once
		err  error
		sem  = make(chan struct{}, limit)
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if ferr := fn(ctx, i); ferr != nil {
				once.Do(func() { err = ferr; cancel(ferr) })
			}
		})
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return context.Cause(ctx)
}
