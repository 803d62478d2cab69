package actor

// Queue is a FIFO queue whose entries can also be removed from the middle in
// O(1), as a waiter that gives up must leave at once. It is an intrusive
// doubly linked list: the element a push returns is the handle to remove it
// with, so the one allocation per entry is the element itself.
//
// A Queue is not safe for concurrent use; its owner is one goroutine. The zero
// value is an empty queue.
type Queue[T any] struct {
	root Elem[T] // sentinel: root.next is the front, root.prev the back
	n    int
}

// Elem is an entry of a Queue.
type Elem[T any] struct {
	Value      T
	prev, next *Elem[T]
	q          *Queue[T]
}

func (q *Queue[T]) lazyInit() {
	if q.root.next == nil {
		q.root.next, q.root.prev = &q.root, &q.root
	}
}

// Len returns the number of entries.
func (q *Queue[T]) Len() int { return q.n }

// PushBack adds v at the back and returns its element.
func (q *Queue[T]) PushBack(v T) *Elem[T] {
	q.lazyInit()
	return q.insert(&Elem[T]{Value: v}, q.root.prev)
}

// PushBackElem adds e, which is in no queue, at the back: for an owner that
// keeps the element inside the value it holds, so that queueing allocates
// nothing. e.Value is left as the caller set it.
func (q *Queue[T]) PushBackElem(e *Elem[T]) *Elem[T] {
	q.lazyInit()
	return q.insert(e, q.root.prev)
}

// PushFrontElem is PushBackElem at the front.
func (q *Queue[T]) PushFrontElem(e *Elem[T]) *Elem[T] {
	q.lazyInit()
	return q.insert(e, &q.root)
}

// PushFront adds v at the front and returns its element. It is for an entry
// that was taken from the front and must go back to where it was.
func (q *Queue[T]) PushFront(v T) *Elem[T] {
	q.lazyInit()
	return q.insert(&Elem[T]{Value: v}, &q.root)
}

func (q *Queue[T]) insert(e, at *Elem[T]) *Elem[T] {
	e.prev, e.next, e.q = at, at.next, q
	at.next.prev = e
	at.next = e
	q.n++
	return e
}

// Front returns the oldest entry, or nil when the queue is empty.
func (q *Queue[T]) Front() *Elem[T] {
	if q.n == 0 {
		return nil
	}
	return q.root.next
}

// Next returns the entry after e, or nil at the back.
func (e *Elem[T]) Next() *Elem[T] {
	if e.q == nil || e.next == &e.q.root {
		return nil
	}
	return e.next
}

// Queued reports whether e is still in its queue.
func (e *Elem[T]) Queued() bool { return e.q != nil }

// Remove takes e out of q and reports whether it was there. Removing an entry
// twice, or one already popped, is a no-op.
func (q *Queue[T]) Remove(e *Elem[T]) bool {
	if e == nil || e.q != q {
		return false
	}
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next, e.q = nil, nil, nil
	q.n--
	return true
}

// PopFront removes and returns the oldest entry's value; ok is false when the
// queue is empty.
func (q *Queue[T]) PopFront() (v T, ok bool) {
	e := q.Front()
	if e == nil {
		return v, false
	}
	q.Remove(e)
	return e.Value, true
}
