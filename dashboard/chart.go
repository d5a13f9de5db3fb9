package dashboard

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// A window is a span of time the chart can show, cut into equal buckets.
type window struct {
	Name   string
	Span   time.Duration
	Bucket time.Duration
	Label  string // time layout for the axis
}

var windows = []window{
	{"1h", time.Hour, 5 * time.Minute, "15:04"},
	{"6h", 6 * time.Hour, 30 * time.Minute, "15:04"},
	{"24h", 24 * time.Hour, time.Hour, "15:04"},
	{"7d", 7 * 24 * time.Hour, 6 * time.Hour, "Jan 2"},
}

const defaultWindow = 2 // 24h

func windowNames() []string {
	out := make([]string, len(windows))
	for i, w := range windows {
		out[i] = w.Name
	}
	return out
}

// chartRowLimit bounds how many tasks the chart reads per status. A job
// that changes more than this in a window is shown for its latest changes,
// and the page says so, rather than read without bound on every refresh.
const chartRowLimit = 2000

// Chart geometry, in SVG user units.
const (
	chartW, chartH    = 760.0, 220.0
	padLeft, padRight = 44.0, 8.0
	padTop, padBottom = 10.0, 24.0
	plotW, plotH      = chartW - padLeft - padRight, chartH - padTop - padBottom
	barGap            = 2.0
	maxAxisLabels     = 8
)

// chart is a stacked bar chart of tasks by current status and the time of
// their last change, ready for the template to draw. Everything is
// computed here so that the template only places shapes and text, which
// html/template escapes like any other.
type chart struct {
	W, H      float64
	Window    string
	Bars      []chartBar
	YTicks    []chartTick
	XLabels   []chartTick
	Legend    []legendItem
	Empty     bool
	Truncated []string // statuses whose changes were cut at chartRowLimit
	Limit     int
}

type chartBar struct {
	X, W     float64
	Title    string
	Segments []segment
}

type segment struct {
	Y, H  float64
	Class string
	Title string
}

type chartTick struct {
	X, Y  float64
	Label string
}

type legendItem struct {
	Name, Class string
	Count       int
}

// buildChart reads the tasks whose status changed in the window, one
// query per status, and buckets them by the time of that change.
func (s *server[S]) buildChart(ctx context.Context, now time.Time, win window) (chart, error) {
	end := now.UTC().Truncate(win.Bucket).Add(win.Bucket)
	start := end.Add(-win.Span)
	statuses := s.st.All()
	counts, truncated, err := s.chartCounts(ctx, now, statuses, start, end, win.Bucket)
	if err != nil {
		return chart{}, err
	}
	ch := chart{W: chartW, H: chartH, Window: win.Name, Limit: chartRowLimit}
	s.drawBars(&ch, statuses, counts, start, win)
	for i, c := range statuses {
		total := 0
		for _, k := range counts[i] {
			total += k
		}
		if total > 0 {
			ch.Legend = append(ch.Legend, legendItem{Name: s.st.Name(c), Class: s.statusClass(c), Count: total})
		}
		if truncated[i] {
			ch.Truncated = append(ch.Truncated, s.st.Name(c))
		}
	}
	return ch, nil
}

// chartCounts counts the tasks of each status whose status changed in each
// bucket from start to end, reading the statuses at once; truncated says
// which statuses had more than chartRowLimit changes, of which only the
// latest are counted.
func (s *server[S]) chartCounts(ctx context.Context, now time.Time, statuses []S, start, end time.Time, bucket time.Duration) (counts [][]int, truncated []bool, err error) {
	n := int(end.Sub(start) / bucket)
	counts = make([][]int, len(statuses)) // [status][bucket]
	truncated = make([]bool, len(statuses))
	errs := make([]error, len(statuses))
	var wg sync.WaitGroup
	for i, c := range statuses {
		counts[i] = make([]int, n)
		wg.Go(func() {
			f := ops.Filter[S]{Statuses: []S{c}, Since: start, Until: end}
			tasks, more, err := s.job.Latest(ctx, f, now, chartRowLimit)
			if err != nil {
				errs[i] = err
				return
			}
			for _, t := range tasks {
				if b := int(t.DueAt.Sub(start) / bucket); b >= 0 && b < n {
					counts[i][b]++
				}
			}
			truncated[i] = more
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("read the chart's tasks: %w", err)
		}
	}
	return counts, truncated, nil
}

// drawBars lays out the chart's stacked bars, one per bucket from start,
// and its axes.
func (s *server[S]) drawBars(ch *chart, statuses []S, counts [][]int, start time.Time, win window) {
	n := int(win.Span / win.Bucket)
	maxTotal := 0
	for b := range n {
		total := 0
		for i := range statuses {
			total += counts[i][b]
		}
		maxTotal = max(maxTotal, total)
	}
	ch.Empty = maxTotal == 0
	top := niceCeil(maxTotal)
	scale := plotH / float64(top)
	barW := plotW / float64(n)
	for b := range n {
		from := start.Add(time.Duration(b) * win.Bucket)
		bar := chartBar{X: padLeft + float64(b)*barW + barGap/2, W: barW - barGap}
		y := padTop + plotH
		var parts []string
		for i, c := range statuses {
			k := counts[i][b]
			if k == 0 {
				continue
			}
			h := float64(k) * scale
			y -= h
			name := s.st.Name(c)
			bar.Segments = append(bar.Segments, segment{Y: y, H: h, Class: s.statusClass(c), Title: fmt.Sprintf("%d %s", k, name)})
			parts = append(parts, fmt.Sprintf("%d %s", k, name))
		}
		bar.Title = fmt.Sprintf("%s – %s UTC", from.Format("Jan 2 15:04"), from.Add(win.Bucket).Format("15:04"))
		if len(parts) > 0 {
			bar.Title += ": " + strings.Join(parts, ", ")
		}
		ch.Bars = append(ch.Bars, bar)
	}
	for _, v := range []int{0, top / 2, top} {
		ch.YTicks = append(ch.YTicks, chartTick{X: padLeft - 6, Y: padTop + plotH - float64(v)*scale, Label: fmt.Sprint(v)})
	}
	step := max(1, (n+maxAxisLabels-1)/maxAxisLabels)
	for b := 0; b < n; b += step {
		from := start.Add(time.Duration(b) * win.Bucket)
		ch.XLabels = append(ch.XLabels, chartTick{X: padLeft + float64(b)*barW, Y: chartH - 6, Label: from.Format(win.Label)})
	}
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten, so the axis
// reads well; it is at least 2, so the middle tick is a whole number.
func niceCeil(n int) int {
	if n <= 2 {
		return 2
	}
	p := math.Pow(10, math.Floor(math.Log10(float64(n))))
	for _, m := range []float64{1, 2, 5, 10} {
		if v := int(m * p); v >= n {
			if v%2 == 1 {
				v++
			}
			return v
		}
	}
	return n
}
