package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"

	"github.com/fairpool/ldappool/sim"
)

// The chart lives in the command, not in package sim, so that a program
// importing sim does not pull the chart library and its dependencies.

// writeChart draws the sizing curve of s as an SVG image: the lease-wait p99
// (milliseconds, left axis) and the throughput (operations a second, right
// axis) against pool size, one line of each for each depth swept, and the
// p50 too when there is one depth. A sweep of depths at one pool size is
// drawn against the depth.
func writeChart(w io.Writer, s *sim.SweepResult) error {
	if len(s.Runs) == 0 {
		return errors.New("chart: no runs to draw")
	}
	size := func(r *sim.Report) int { return r.PoolSize }
	depth := func(r *sim.Report) int { return r.Depth }
	xName, xOf, lineOf, lineName := "pool size", size, depth, "depth"
	if len(distinct(s.Runs, size)) == 1 && len(distinct(s.Runs, depth)) > 1 {
		xName, xOf, lineOf, lineName = "operations per connection", depth, size, "pool size"
	}
	lines := distinct(s.Runs, lineOf)
	xs := distinct(s.Runs, xOf)
	var ticks []chart.Tick
	for _, x := range xs {
		ticks = append(ticks, chart.Tick{Value: float64(x), Label: strconv.Itoa(x)})
	}
	// go-chart refuses a range of zero width, as a single run or a flat
	// curve would give: the x range is set by the ticks, so one run gets a
	// blank tick either side; y ranges start at 0 and are never empty.
	lo, hi := float64(xs[0]), float64(xs[len(xs)-1])
	if lo == hi {
		lo, hi = lo-1, hi+1
		ticks = append([]chart.Tick{{Value: lo}}, append(ticks, chart.Tick{Value: hi})...)
	}
	var series []chart.Series
	var allP99, allTput []float64
	for i, l := range lines {
		var x, p50, p99, tput []float64
		for _, r := range s.Runs {
			if lineOf(r) == l {
				x = append(x, float64(xOf(r)))
				p50 = append(p50, ms(r.Wait.P50))
				p99 = append(p99, ms(r.Wait.P99))
				tput = append(tput, r.Throughput)
			}
		}
		sortBy(x, p50, p99, tput)
		allP99, allTput = append(allP99, p99...), append(allTput, tput...)
		at := ""
		if len(lines) > 1 {
			at = fmt.Sprintf(" at %s %d", lineName, l)
		}
		waitColor, tputColor := waitColors[i%len(waitColors)], tputColors[i%len(tputColors)]
		series = append(series,
			chart.ContinuousSeries{Name: "lease wait p99 (ms)" + at, XValues: x, YValues: p99,
				Style: line(drawing.ColorFromHex(waitColor), nil)},
			chart.ContinuousSeries{Name: "throughput (ops/s)" + at, XValues: x, YValues: tput,
				YAxis: chart.YAxisSecondary, Style: line(drawing.ColorFromHex(tputColor), nil)})
		if len(lines) == 1 {
			series = append(series, chart.ContinuousSeries{Name: "lease wait p50 (ms)", XValues: x, YValues: p50,
				Style: line(drawing.ColorFromHex("ff9896"), []float64{5, 5})})
		}
	}
	c := chart.Chart{
		Title:  fmt.Sprintf("Sizing curve: %s", s.Runs[0].Workload),
		Width:  960,
		Height: 540,
		Background: chart.Style{
			Padding: chart.Box{Top: 100, Left: 40, Right: 20, Bottom: 20},
		},
		XAxis: chart.XAxis{
			Name:  xName,
			Range: &chart.ContinuousRange{Min: lo, Max: hi},
			Ticks: ticks,
		},
		YAxis: chart.YAxis{
			Name:           "lease wait (ms)",
			Range:          &chart.ContinuousRange{Min: 0, Max: top(allP99)},
			ValueFormatter: func(v any) string { return chart.FloatValueFormatterWithFormat(v, "%.3g") },
		},
		YAxisSecondary: chart.YAxis{
			Name:           "throughput (ops/s)",
			Range:          &chart.ContinuousRange{Min: 0, Max: top(allTput)},
			ValueFormatter: func(v any) string { return chart.FloatValueFormatterWithFormat(v, "%.0f") },
		},
		Series: series,
	}
	c.Elements = []chart.Renderable{chart.LegendThin(&c)}
	if err := c.Render(chart.SVG, w); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// The colours of the lines, in turn: reds and browns for waits, blues and
// greens for throughput.
var (
	waitColors = []string{"d62728", "ff7f0e", "8c564b", "e377c2", "9467bd", "7f7f7f"}
	tputColors = []string{"1f77b4", "17becf", "2ca02c", "bcbd22", "393b79", "637939"}
)

// distinct returns the values of f over runs, sorted, each once.
func distinct(runs []*sim.Report, f func(*sim.Report) int) []int {
	var vs []int
	for _, r := range runs {
		vs = append(vs, f(r))
	}
	slices.Sort(vs)
	return slices.Compact(vs)
}

// sortBy sorts x, and the ys with it, by x.
func sortBy(x []float64, ys ...[]float64) {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case x[a] < x[b]:
			return -1
		case x[a] > x[b]:
			return 1
		}
		return 0
	})
	for _, v := range append([][]float64{x}, ys...) {
		sorted := make([]float64, len(v))
		for i, j := range idx {
			sorted[i] = v[j]
		}
		copy(v, sorted)
	}
}

func line(color drawing.Color, dash []float64) chart.Style {
	return chart.Style{StrokeColor: color, StrokeWidth: 2, StrokeDashArray: dash, DotColor: color, DotWidth: 4}
}

// top returns an axis maximum a little above the largest of vs, and never 0.
func top(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = max(m, v)
	}
	if m == 0 {
		return 1
	}
	return m * 1.1
}

// ms returns d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
