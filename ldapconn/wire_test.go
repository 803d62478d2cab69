package ldapconn

import (
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// The Abandon request decodes as RFC 4511 has it, and messageID reads the
// ID back from it and from go-ldap's own requests.
func TestAbandonEncodingRoundTrips(t *testing.T) {
	for _, target := range []int64{1, 127, 128, 65535, 1 << 24, abandonID - 1} {
		b := encodeAbandon(abandonID, target)
		p, err := ber.DecodePacketErr(b)
		if err != nil || len(p.Children) != 2 {
			t.Fatalf("encodeAbandon(%d) = % x does not decode: %v", target, b, err)
		}
		op := p.Children[1]
		v, err := ber.ParseInt64(op.Data.Bytes())
		if op.ClassType != ber.ClassApplication || op.Tag != ldap.ApplicationAbandonRequest || err != nil || v != target {
			t.Fatalf("encodeAbandon(%d) decodes as class %v tag %v value %v (%v)", target, op.ClassType, op.Tag, v, err)
		}
		if id, ok := messageID(b); !ok || id != abandonID {
			t.Fatalf("messageID(abandon) = %d, %v; want %d", id, ok, abandonID)
		}
	}
}

func FuzzMessageID(f *testing.F) {
	f.Add(encodeAbandon(5, 4))
	f.Add(encodeAbandon(abandonID, 1<<20))
	f.Add([]byte{0x30, 0x84, 0, 0, 0, 5, 2, 1, 9, 0x42, 0})
	f.Add([]byte{0x16, 3, 1, 0, 5}) // a TLS record
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := messageID(b)
		if !ok {
			return
		}
		if id < 0 || id > 1<<31-1 {
			t.Fatalf("messageID(% x) = %d: outside RFC 4511's range", b, id)
		}
		// A message whose header reads must decode to the same ID when it
		// is whole.
		if p, err := ber.DecodePacketErr(b); err == nil && len(p.Children) > 0 {
			if v, isInt := p.Children[0].Value.(int64); isInt && v != id && p.Children[0].Tag == ber.TagInteger {
				t.Fatalf("messageID(% x) = %d; the decoder reads %d", b, id, v)
			}
		}
	})
}
