package ddbtrack

import (
	"context"
	"time"
)

// Progress reports a job's progress to [ProcessOptions].Progress. The
// counts are the whole job's, across every worker, read from the status
// index, which is eventually consistent.
type Progress struct {
	// Succeeded, Failed, Ignored and Running count the tasks in those
	// roles. Failed tasks will be retried; Ignored ones will not.
	Succeeded, Failed, Ignored, Running int64
	// Pending counts tasks waiting for a first attempt, in Pending or one
	// of Config.Startable.
	Pending int64
	// Remaining is Pending + Failed + Running: tasks not yet finished.
	Remaining int64
	// Rate is how many tasks per second became Succeeded or Ignored,
	// over the last minute at most. It is 0 until two reports apart.
	Rate float64
	// ETA is Remaining / Rate, or 0 when Rate is 0.
	ETA time.Duration
	// Elapsed is the time since Process started.
	Elapsed time.Duration
	// AsOf is when the counts were taken.
	AsOf time.Time
	// Process is what this call of Process has done so far.
	Process ProcessResult
}

// report calls Progress every ProgressInterval until stop is closed, and
// once more then.
func (p *pool[S]) report(ctx context.Context, stop <-chan struct{}) {
	type sample struct {
		at   time.Time
		done int64
	}
	var samples []sample
	var stopped time.Time // by Config.Now, once the pool has ended
	tick := time.NewTicker(p.opts.ProgressInterval)
	defer tick.Stop()
	for final := false; !final; {
		select {
		case <-tick.C:
		case <-stop:
			final, stopped = true, p.t.cfg.Now()
		}
		// The last report runs after ctx may have ended; it still says
		// where the job stands.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		counts, err := p.progressCounts(rctx, stopped)
		cancel()
		if err != nil {
			if !final {
				p.problem(ctx, err, true)
			}
			continue
		}
		cfg, by := p.t.cfg, counts.ByStatus
		pr := Progress{
			Succeeded: by[cfg.Succeeded], Failed: by[cfg.Failed], Ignored: by[cfg.Ignored],
			Running: by[cfg.Running], Pending: by[cfg.Pending],
			Elapsed: time.Since(p.began), AsOf: counts.AsOf,
		}
		for _, s := range cfg.Startable {
			pr.Pending += by[s]
		}
		pr.Remaining = pr.Pending + pr.Failed + pr.Running
		now := time.Now()
		samples = append(samples, sample{now, pr.Succeeded + pr.Ignored})
		for len(samples) > 2 && now.Sub(samples[0].at) > time.Minute {
			samples = samples[1:]
		}
		if first := samples[0]; len(samples) > 1 && now.Sub(first.at) > 0 {
			pr.Rate = float64(samples[len(samples)-1].done-first.done) / now.Sub(first.at).Seconds()
		}
		if pr.Rate > 0 {
			pr.ETA = time.Duration(float64(pr.Remaining) / pr.Rate * float64(time.Second))
		}
		p.mu.Lock()
		pr.Process = p.res
		p.mu.Unlock()
		p.opts.Progress(pr)
	}
}

// progressCounts returns the counts of a report. Every pool of the job
// shares one count per ProgressInterval, or per Config.CountMaxAge if that
// is longer; but the last report, once the pool has stopped (stopped is
// set), must count every outcome the pool wrote, so it takes only counts
// from after that, counting afresh if the shared ones are older.
func (p *pool[S]) progressCounts(ctx context.Context, stopped time.Time) (Counts[S], error) {
	maxAge := max(p.opts.ProgressInterval, p.t.cfg.CountMaxAge)
	if !stopped.IsZero() {
		maxAge = p.t.cfg.Now().Sub(stopped)
	}
	counts, err := p.t.sharedCount(ctx, maxAge, p.t.roles())
	if err == nil && counts.AsOf.Before(stopped) {
		// Another caller holds the refresh: its counts are not here yet.
		return p.t.count(ctx, p.t.roles())
	}
	return counts, err
}
