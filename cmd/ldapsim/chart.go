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

// writeChart draws the sizing curve of s as an SVG image: the lease-wait p50
// and p99 (milliseconds, right axis) and the throughput (operations a
// second, left axis) against pool size.
func writeChart(w io.Writer, s *sim.SweepResult) error {
	runs := slices.Clone(s.Runs)
	slices.SortStableFunc(runs, func(a, b *sim.Report) int { return a.PoolSize - b.PoolSize })
	if len(runs) == 0 {
		return errors.New("chart: no runs to draw")
	}
	var sizes, p50, p99, tput []float64
	var ticks []chart.Tick
	for _, r := range runs {
		x := float64(r.PoolSize)
		sizes = append(sizes, x)
		p50 = append(p50, ms(r.Wait.P50))
		p99 = append(p99, ms(r.Wait.P99))
		tput = append(tput, r.Throughput)
		ticks = append(ticks, chart.Tick{Value: x, Label: strconv.Itoa(r.PoolSize)})
	}
	// go-chart refuses a range of zero width, as a single run or a flat
	// curve would give: the x range is set by the ticks, so one run gets a
	// blank tick either side; y ranges start at 0 and are never empty.
	lo, hi := sizes[0], sizes[len(sizes)-1]
	if lo == hi {
		lo, hi = lo-1, hi+1
		ticks = append([]chart.Tick{{Value: lo}}, append(ticks, chart.Tick{Value: hi})...)
	}
	c := chart.Chart{
		Title:  fmt.Sprintf("Sizing curve: %s", runs[0].Workload),
		Width:  960,
		Height: 540,
		Background: chart.Style{
			Padding: chart.Box{Top: 100, Left: 40, Right: 20, Bottom: 20},
		},
		XAxis: chart.XAxis{
			Name:  "pool size",
			Range: &chart.ContinuousRange{Min: lo, Max: hi},
			Ticks: ticks,
		},
		YAxis: chart.YAxis{
			Name:           "lease wait (ms)",
			Range:          &chart.ContinuousRange{Min: 0, Max: top(p99)},
			ValueFormatter: func(v any) string { return chart.FloatValueFormatterWithFormat(v, "%.3g") },
		},
		YAxisSecondary: chart.YAxis{
			Name:           "throughput (ops/s)",
			Range:          &chart.ContinuousRange{Min: 0, Max: top(tput)},
			ValueFormatter: func(v any) string { return chart.FloatValueFormatterWithFormat(v, "%.0f") },
		},
		Series: []chart.Series{
			chart.ContinuousSeries{Name: "lease wait p99 (ms)", XValues: sizes, YValues: p99,
				Style: line(drawing.ColorFromHex("d62728"), nil)},
			chart.ContinuousSeries{Name: "lease wait p50 (ms)", XValues: sizes, YValues: p50,
				Style: line(drawing.ColorFromHex("ff9896"), []float64{5, 5})},
			chart.ContinuousSeries{Name: "throughput (ops/s)", XValues: sizes, YValues: tput,
				YAxis: chart.YAxisSecondary, Style: line(drawing.ColorFromHex("1f77b4"), nil)},
		},
	}
	c.Elements = []chart.Renderable{chart.LegendThin(&c)}
	if err := c.Render(chart.SVG, w); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
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
