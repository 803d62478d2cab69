package ldapotel

// Option configures Register.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config holds Register's settings; defaults beside each field.
type config struct {
	buckets []float64 // defaultBuckets
}

// defaultBuckets span a lease served from an idle connection (well under a
// millisecond) to a dial across a slow network (seconds), in seconds.
var defaultBuckets = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// WithBucketBoundaries sets the bucket boundaries, in seconds and in
// increasing order, of the three duration histograms (wait_time, use_time,
// create_time). Default 0.1ms, 0.5ms, 1ms, 5ms, 10ms, 50ms, 100ms, 0.5s, 1s,
// 5s, 10s. A View of the MeterProvider overrides it.
func WithBucketBoundaries(bounds ...float64) Option {
	return optionFunc(func(c *config) { c.buckets = bounds })
}
