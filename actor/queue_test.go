package actor_test

import (
	"slices"
	"testing"

	"github.com/fairpool/ldappool/actor"
)

func values(q *actor.Queue[int]) []int {
	var out []int
	for e := q.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value)
	}
	return out
}

func TestQueue(t *testing.T) {
	var q actor.Queue[int]
	if _, ok := q.PopFront(); ok || q.Front() != nil || q.Len() != 0 {
		t.Fatal("zero Queue is not empty")
	}
	es := make([]*actor.Elem[int], 6)
	for i := range es {
		es[i] = q.PushBack(i)
	}
	tests := []struct {
		name string
		do   func()
		want []int
	}{
		{"remove middle", func() { q.Remove(es[2]) }, []int{0, 1, 3, 4, 5}},
		{"remove twice is a no-op", func() { q.Remove(es[2]) }, []int{0, 1, 3, 4, 5}},
		{"remove back", func() { q.Remove(es[5]) }, []int{0, 1, 3, 4}},
		{"pop front", func() { q.PopFront() }, []int{1, 3, 4}},
		{"removing a popped entry is a no-op", func() { q.Remove(es[0]) }, []int{1, 3, 4}},
		{"push front", func() { es[0] = q.PushFront(9) }, []int{9, 1, 3, 4}},
		{"remove front", func() { q.Remove(es[0]) }, []int{1, 3, 4}},
	}
	for _, tt := range tests {
		tt.do()
		if got := values(&q); !slices.Equal(got, tt.want) || q.Len() != len(tt.want) {
			t.Fatalf("%s: queue = %v (Len %d); want %v", tt.name, got, q.Len(), tt.want)
		}
	}
	if es[2].Queued() || !es[1].Queued() {
		t.Fatal("Queued does not track membership")
	}
	var other actor.Queue[int]
	if other.Remove(es[1]) {
		t.Fatal("Remove took an entry of another queue")
	}
}

func BenchmarkQueuePushPop(b *testing.B) {
	var q actor.Queue[int]
	for i := range b.N {
		e := q.PushBack(i)
		if i%2 == 0 {
			q.Remove(e)
		} else {
			q.PopFront()
		}
	}
}

// Elements the owner keeps inside its values queue as pushed values do, and
// can be queued again once removed.
func TestQueueOfOwnedElements(t *testing.T) {
	type item struct {
		n    int
		node actor.Elem[*item]
	}
	var q actor.Queue[*item]
	items := make([]*item, 3)
	for i := range items {
		items[i] = &item{n: i}
		items[i].node.Value = items[i]
	}
	q.PushBackElem(&items[1].node)
	q.PushBackElem(&items[2].node)
	q.PushFrontElem(&items[0].node)
	var got []int
	for e := q.Front(); e != nil; e = e.Next() {
		got = append(got, e.Value.n)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("order %v; want [0 1 2]", got)
	}
	if !q.Remove(&items[1].node) || q.Remove(&items[1].node) || q.Len() != 2 {
		t.Fatal("removing an owned element twice")
	}
	q.PushBackElem(&items[1].node)
	if q.Len() != 3 || q.Front().Value.n != 0 {
		t.Fatalf("len %d after queueing a removed element again", q.Len())
	}
}
