package main

import (
	"bytes"
	"encoding/xml"
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
