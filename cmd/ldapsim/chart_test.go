package main

import (
	"bytes"
	"encoding/xml"
	"slices"
	"testing"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func TestChartIsSVG(t *testing.T) {
	res := &sim.SweepResult{Runs: []*sim.Report{
		{PoolSize: 4, Throughput: 4000, Wait: sim.Percentiles{Count: 1, P50: time.Millisecond, P99: 3 * time.Millisecond}},
		{PoolSize: 1, Throughput: 1000, Wait: sim.Percentiles{Count: 1, P50: 9 * time.Millisecond, P99: 15 * time.Millisecond}},
	}}
	var svg bytes.Buffer
	if err := writeChart(&svg, res); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{ XMLName xml.Name })); err != nil || !bytes.HasPrefix(svg.Bytes(), []byte("<svg")) {
		t.Errorf("chart is not an SVG document: %v", err)
	}
}

func TestChartOfOneRun(t *testing.T) {
	res := &sim.SweepResult{Runs: []*sim.Report{{PoolSize: 4}}}
	var svg bytes.Buffer
	if err := writeChart(&svg, res); err != nil {
		t.Fatalf("chart of one run with zero figures: %v", err)
	}
	if err := writeChart(&svg, &sim.SweepResult{}); err == nil {
		t.Fatal("chart of no runs = nil error")
	}
}

func TestChartOfSizesAndDepths(t *testing.T) {
	var runs []*sim.Report
	for _, size := range []int{4, 1, 2} {
		for _, depth := range []int{1, 8} {
			runs = append(runs, &sim.Report{PoolSize: size, Depth: depth, Throughput: float64(1000 * size * depth),
				Wait: sim.Percentiles{Count: 1, P99: time.Duration(16/size/depth) * time.Millisecond}})
		}
	}
	for name, res := range map[string]*sim.SweepResult{
		"sizes and depths":       {Runs: runs},
		"depths at one size":     {Runs: runs[:2]},
		"one depth across sizes": {Runs: []*sim.Report{runs[0], runs[2], runs[4]}},
	} {
		var svg bytes.Buffer
		if err := writeChart(&svg, res); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.HasPrefix(svg.Bytes(), []byte("<svg")) {
			t.Errorf("%s: not an SVG document", name)
		}
		wantLegend := "at depth 8"
		switch name {
		case "depths at one size":
			wantLegend = "operations per connection"
		case "one depth across sizes":
			wantLegend = "lease wait p50"
		}
		if !bytes.Contains(svg.Bytes(), []byte(wantLegend)) {
			t.Errorf("%s: the chart does not say %q", name, wantLegend)
		}
	}
}

func TestSortBy(t *testing.T) {
	x, y := []float64{4, 1, 2}, []float64{40, 10, 20}
	sortBy(x, y)
	if !slices.Equal(x, []float64{1, 2, 4}) || !slices.Equal(y, []float64{10, 20, 40}) {
		t.Fatalf("sortBy gave x %v, y %v; want 1,2,4 and 10,20,40", x, y)
	}
}
