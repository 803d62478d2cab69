package ldapotel_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldapconn/ldapotel"
	"github.com/fairpool/ldappool/ldaptest"
)

func ExampleRegister() {
	ctx := context.Background()
	srv, err := ldaptest.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	pool, err := ldapconn.NewPool(srv.URL(),
		ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithPoolName("directory"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close(ctx)

	// A program would pass its own MeterProvider, otel.GetMeterProvider()
	// for one; a ManualReader lets the example read what it exports.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	unregister, err := ldapotel.Register(pool, mp)
	if err != nil {
		log.Fatal(err)
	}
	defer unregister()

	lease, err := pool.Lease(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if m.Name != "db.client.connection.count" {
			continue
		}
		for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
			pool, _ := p.Attributes.Value("db.client.connection.pool.name")
			state, _ := p.Attributes.Value("db.client.connection.state")
			if pool.AsString() == "directory" {
				fmt.Printf("%s %s=%d\n", m.Name, state.AsString(), p.Value)
			}
		}
	}
	// Unordered output:
	// db.client.connection.count idle=0
	// db.client.connection.count used=1
}
