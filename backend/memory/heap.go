package memory

import "time"

// heapItem is an element of a [timeHeap]: it has a time to order by and
// remembers its index so that it can be moved or removed in O(log n).
type heapItem interface {
	heapTime() time.Time
	setHeapIdx(i int)
}

// timeHeap is a min-heap by heapTime.
type timeHeap[T heapItem] []T

func (hp timeHeap[T]) less(i, j int) bool { return hp[i].heapTime().Before(hp[j].heapTime()) }

func (hp timeHeap[T]) swap(i, j int) {
	hp[i], hp[j] = hp[j], hp[i]
	hp[i].setHeapIdx(i)
	hp[j].setHeapIdx(j)
}

func (hp *timeHeap[T]) push(x T) {
	i := len(*hp)
	x.setHeapIdx(i)
	*hp = append(*hp, x)
	hp.up(i)
}

func (hp *timeHeap[T]) remove(i int) {
	h := *hp
	last := len(h) - 1
	if i != last {
		h.swap(i, last)
	}
	h[last].setHeapIdx(-1)
	var zero T
	h[last] = zero
	*hp = h[:last]
	if i != last {
		hp.fix(i)
	}
}

func (hp timeHeap[T]) fix(i int) {
	if !hp.down(i) {
		hp.up(i)
	}
}

func (hp timeHeap[T]) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !hp.less(j, i) {
			break
		}
		hp.swap(i, j)
		j = i
	}
}

func (hp timeHeap[T]) down(i0 int) bool {
	i := i0
	n := len(hp)
	for {
		j1 := 2*i + 1
		if j1 >= n {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && hp.less(j2, j1) {
			j = j2
		}
		if !hp.less(j, i) {
			break
		}
		hp.swap(i, j)
		i = j
	}
	return i > i0
}

func (l *lock) heapTime() time.Time       { return l.timerAt }
func (l *lock) setHeapIdx(i int)          { l.heapIdx = i }
func (s *sessionRec) heapTime() time.Time { return s.expires }
func (s *sessionRec) setHeapIdx(i int)    { s.heapIdx = i }
