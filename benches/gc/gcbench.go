// The collector benchmarks in Go (the anchor): the same programs as gcbench.c, written as
// idiomatic Go. Prints the same RESULT line; pauses are runtime.MemStats.PauseNs.
package main

import (
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

type node struct{ left, right *node }

func make_(depth int) *node {
	n := &node{}
	if depth > 0 {
		n.left = make_(depth - 1)
		n.right = make_(depth - 1)
	}
	return n
}

func (n *node) check() uint64 {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func binaryTrees(n int) uint64 {
	maxDepth := n
	if maxDepth < 6 {
		maxDepth = 6
	}
	var sum uint64
	c := make_(maxDepth + 1).check()
	fmt.Printf("stretch tree of depth %d\t check: %d\n", maxDepth+1, c)
	sum += c
	longLived := make_(maxDepth)
	for d := 4; d <= maxDepth; d += 2 {
		iterations := uint64(1) << uint(maxDepth-d+4)
		var total uint64
		for i := uint64(0); i < iterations; i++ {
			total += make_(d).check()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iterations, d, total)
		sum += total
	}
	c = longLived.check()
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, c)
	return sum + c
}

type node4 struct {
	left, right *node4
	i, j        int64
}

const (
	stretch   = 18
	longLived = 16
	arraySize = 500000
	minDepth  = 4
	maxDepth  = 16
)

func treeSize(d int) int64 { return (int64(1) << uint(d+1)) - 1 }
func numIters(d int) int64 { return 2 * treeSize(stretch) / treeSize(d) }

func populate(depth int, n *node4) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = &node4{}
	n.right = &node4{}
	populate(depth, n.left)
	populate(depth, n.right)
}

func makeTree(depth int) *node4 {
	if depth <= 0 {
		return &node4{}
	}
	l := makeTree(depth - 1)
	r := makeTree(depth - 1)
	return &node4{left: l, right: r}
}

func count4(n *node4) uint64 {
	if n == nil {
		return 0
	}
	return 1 + count4(n.left) + count4(n.right)
}

func gcbench() uint64 {
	var sum uint64
	sum += count4(makeTree(stretch))
	ll := &node4{}
	populate(longLived, ll)
	array := make([]float64, arraySize)
	for i := 0; i < arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}
	for d := minDepth; d <= maxDepth; d += 2 {
		iters := numIters(d)
		for i := int64(0); i < iters; i++ {
			t := &node4{}
			populate(d, t)
			if t.left != nil {
				sum++
			}
		}
		for i := int64(0); i < iters; i++ {
			if makeTree(d).left != nil {
				sum++
			}
		}
		fmt.Printf("depth %d: %d top-down and bottom-up trees\n", d, iters)
	}
	if array[1000] != 1.0/1000 {
		fmt.Fprintln(os.Stderr, "gcbench: the array lost its contents")
		os.Exit(1)
	}
	return sum + count4(ll)
}

// The message buffer (gcbench.c's msgbuf and msgbuf-ptr): a window of 200,000 messages,
// 1,000,000 pushes each replacing the oldest, every push timed.
const (
	window   = 200000
	pushes   = 1000000
	msgNodes = 8
)

type msgnode struct {
	next *msgnode
	data [120]byte
}

var pushHist [64 * 8]uint64
var pushCount, pushMax uint64

func pushTime(ns uint64) {
	e := 0
	if ns > 0 {
		e = 63 - bits.LeadingZeros64(ns)
	}
	sub := 0
	if e >= 3 {
		sub = int((ns >> (e - 3)) & 7)
	}
	pushHist[e*8+sub]++
	pushCount++
	if ns > pushMax {
		pushMax = ns
	}
}

func pushP999() uint64 {
	want, seen := pushCount-pushCount/1000, uint64(0)
	for b := 0; b < 64*8; b++ {
		seen += pushHist[b]
		if seen >= want {
			e, sub := b/8, b%8
			if e >= 3 {
				return uint64(8+sub+1) << (e - 3)
			}
			return 1 << (e + 1)
		}
	}
	return pushMax
}

func msgbuf(ptr bool) uint64 {
	var sum uint64
	if !ptr {
		w := make([][]byte, window)
		for i := 0; i < pushes; i++ {
			t := time.Now()
			m := make([]byte, 1024)
			for k := range m {
				m[k] = byte(i)
			}
			w[i%window] = m
			pushTime(uint64(time.Since(t)))
		}
		for _, m := range w {
			sum += uint64(m[0])
		}
		return sum
	}
	w := make([]*msgnode, window)
	for i := 0; i < pushes; i++ {
		t := time.Now()
		var head *msgnode
		for k := 0; k < msgNodes; k++ {
			n := &msgnode{next: head}
			for j := range n.data {
				n.data[j] = byte(i + k)
			}
			head = n
		}
		w[i%window] = head
		pushTime(uint64(time.Since(t)))
	}
	for _, m := range w {
		for n := m; n != nil; n = n.next {
			sum += uint64(n.data[0])
		}
	}
	return sum
}

// The pool benchmark: a sync.Pool Get+Put pair against a plain allocation, as in gcbench.c.
var (
	poolExtra string
	sink      *node4
)

func poolBench() uint64 {
	const n = 20000000
	var sum uint64
	p := sync.Pool{New: func() any { return new(node4) }}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		x := p.Get().(*node4)
		x.i = int64(i)
		sum += uint64(x.i)
		p.Put(x)
	}
	t1 := time.Now()
	for i := 0; i < n; i++ {
		x := &node4{}
		x.i = int64(i)
		sum += uint64(x.i)
		sink = x
	}
	t2 := time.Now()
	poolExtra = fmt.Sprintf(" pool_pair_ps=%d alloc_ps=%d", t1.Sub(t0).Nanoseconds()*1000/n, t2.Sub(t1).Nanoseconds()*1000/n)
	return sum
}

// The weak benchmark as in gcbench.c, without the weak handles (Go 1.19 has none): what
// 10,000 finalizers on live objects add to a full collection of 100,000 objects.
func fullGCNs() int64 {
	t := make([]int64, 5)
	for i := range t {
		t0 := time.Now()
		runtime.GC()
		t[i] = time.Since(t0).Nanoseconds()
	}
	sort.Slice(t, func(a, b int) bool { return t[a] < t[b] })
	return t[2]
}

func weakBench() uint64 {
	const objs, finals, n = 100000, 10000, 10000000
	arr := make([]*node4, objs)
	for i := range arr {
		arr[i] = &node4{i: int64(i)}
	}
	base := fullGCNs()
	runs := uint64(0)
	for i := 0; i < finals; i++ {
		runtime.SetFinalizer(arr[i], func(*node4) { runs++ })
	}
	with := fullGCNs()
	var sum uint64
	for i := 0; i < n; i++ {
		sum += uint64(arr[i%objs].i)
	}
	runtime.KeepAlive(arr)
	poolExtra = fmt.Sprintf(" cycle_base_us=%d cycle_us=%d", base/1000, with/1000)
	return sum + runs
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gcbench binary-trees N | gcbench | msgbuf | msgbuf-ptr | pool")
		os.Exit(2)
	}
	var sum uint64
	switch os.Args[1] {
	case "binary-trees":
		n := 18
		if len(os.Args) > 2 {
			n, _ = strconv.Atoi(os.Args[2])
		}
		sum = binaryTrees(n)
	case "gcbench":
		sum = gcbench()
	case "msgbuf":
		sum = msgbuf(false)
	case "msgbuf-ptr":
		sum = msgbuf(true)
	case "pool":
		sum = poolBench()
	case "weak":
		sum = weakBench()
	default:
		fmt.Fprintln(os.Stderr, "unknown benchmark", os.Args[1])
		os.Exit(2)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	k := ms.NumGC
	if k > 256 {
		k = 256
	}
	pauses := make([]uint64, 0, k)
	for i := uint32(0); i < k; i++ {
		pauses = append(pauses, ms.PauseNs[(ms.NumGC+255-i)%256])
	}
	sort.Slice(pauses, func(a, b int) bool { return pauses[a] < pauses[b] })
	var p50, max uint64
	if len(pauses) > 0 {
		p50 = pauses[len(pauses)/2]
		max = pauses[len(pauses)-1]
	}
	push := ""
	if pushCount > 0 {
		push = fmt.Sprintf(" push_max_ns=%d push_p999_ns=%d", pushMax, pushP999())
	}
	cpu := fmt.Sprintf(" gc_cpu_pm=%d", uint64(ms.GCCPUFraction*1000+0.5))
	fmt.Printf("RESULT checksum=%d gcs=%d p50_ns=%d max_ns=%d%s%s%s\n", sum, ms.NumGC, p50, max, cpu, push, poolExtra)
}
