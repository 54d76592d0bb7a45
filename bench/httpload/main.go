// Command httpload is the benchmarks' HTTP/1.1 upstream and load generator: both cost far less
// per request than the proxy between them, so the proxy is what a saturation run measures.
//
//	httpload serve ADDRESS
//	httpload load [-connections N] [-seconds S] [-traced | -users] ADDRESS
//
// `load` keeps N connections busy for S seconds, one request in flight on each, and prints
// one JSON line: requests, errors, seconds, and the p50/p99 latency in microseconds. With
// -traced, a connection's requests alternate "lane + new trace" and "trace only" (the trace
// just sent), the mix the trace-affinity module remembers and restores. With -users, each
// request carries a user key of its own and no lane, what sticky entry hashes at the gateway.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

const (
	laneHeader  = "x-asm-prefer-tag"
	userHeader  = "x-user-id"
	traceHeader = "my-request-id"
	answer      = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: httpload serve ADDRESS | httpload load [flags] ADDRESS")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "httpload: "+message)
	os.Exit(2)
}

// serve answers every request on every connection with 200 "ok", pipelined requests too.
func serve(args []string) {
	if len(args) != 1 {
		fail("usage: httpload serve ADDRESS")
	}
	listener, err := net.Listen("tcp", args[0])
	if err != nil {
		fail(err.Error())
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			fail(err.Error())
		}
		go answerAll(conn)
	}
}

func answerAll(conn net.Conn) {
	defer conn.Close()
	reader, writer := bufio.NewReader(conn), bufio.NewWriter(conn)
	for {
		if err := skipRequest(reader); err != nil {
			return
		}
		writer.WriteString(answer)
		if reader.Buffered() == 0 && writer.Flush() != nil {
			return
		}
	}
}

// skipRequest reads one request's head and its body, if it has a Content-Length.
func skipRequest(reader *bufio.Reader) error {
	length, err := readHead(reader)
	if err != nil {
		return err
	}
	_, err = reader.Discard(length)
	return err
}

// readHead reads a message's head and returns its Content-Length (0 if none).
func readHead(reader *bufio.Reader) (int, error) {
	length := 0
	for first := true; ; first = false {
		line, err := reader.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if first {
				continue
			}
			return length, nil
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if found && bytes.EqualFold(name, []byte("content-length")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(value)))
			if err != nil {
				return 0, err
			}
		}
	}
}

type result struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
}

func load(args []string) {
	flags := flag.NewFlagSet("load", flag.ExitOnError)
	connections := flags.Int("connections", 1, "connections, one request in flight on each")
	seconds := flags.Float64("seconds", 5, "how long to send")
	traced := flags.Bool("traced", false, "alternate lane + new trace and trace only")
	users := flags.Bool("users", false, "a user key of its own on every request, no lane")
	flags.Parse(args)
	if flags.NArg() != 1 {
		fail("usage: httpload load [flags] ADDRESS")
	}
	address := flags.Arg(0)
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	latencies := make([][]time.Duration, *connections)
	errs := make([]int, *connections)
	var wait sync.WaitGroup
	started := time.Now()
	for c := range *connections {
		wait.Add(1)
		go func() {
			defer wait.Done()
			latencies[c], errs[c] = send(address, fmt.Sprintf("%s-%d", run, c), *traced, *users, deadline)
		}()
	}
	wait.Wait()
	elapsed := time.Since(started)
	all := slices.Concat(latencies...)
	slices.Sort(all)
	out := result{Requests: len(all), Seconds: elapsed.Seconds()}
	for _, e := range errs {
		out.Errors += e
	}
	if len(all) > 0 {
		out.P50 = float64(all[len(all)/2]) / 1e3
		out.P99 = float64(all[len(all)*99/100]) / 1e3
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// send keeps one connection busy until the deadline, reconnecting after an error.
func send(address, tag string, traced, users bool, deadline time.Time) ([]time.Duration, int) {
	var latencies []time.Duration
	errorCount := 0
	var conn net.Conn
	var reader *bufio.Reader
	var request []byte
	for n := 0; time.Now().Before(deadline); n++ {
		if conn == nil {
			var err error
			if conn, err = net.DialTimeout("tcp", address, time.Second); err != nil {
				errorCount++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			reader = bufio.NewReader(conn)
		}
		request = appendRequest(request[:0], address, tag, n, traced, users)
		started := time.Now()
		err := roundTrip(conn, reader, request)
		latencies = append(latencies, time.Since(started))
		if err != nil {
			errorCount++
			conn.Close()
			conn = nil
		}
	}
	if conn != nil {
		conn.Close()
	}
	return latencies, errorCount
}

// appendRequest writes request n: with -traced, even ones carry a lane and a new trace, odd
// ones the trace of the request before them and no lane; with -users, each a user key of its own.
func appendRequest(out []byte, host, tag string, n int, traced, users bool) []byte {
	out = fmt.Appendf(out, "GET / HTTP/1.1\r\nHost: %s\r\n", host)
	if traced {
		if n%2 == 0 {
			out = fmt.Appendf(out, "%s: canary\r\n", laneHeader)
		}
		out = fmt.Appendf(out, "%s: %s-%d\r\n", traceHeader, tag, n/2)
	}
	if users {
		out = fmt.Appendf(out, "%s: %s-%d\r\n", userHeader, tag, n)
	}
	return append(out, "\r\n"...)
}

var errStatus = errors.New("status other than 200")

func roundTrip(conn net.Conn, reader *bufio.Reader, request []byte) error {
	if _, err := conn.Write(request); err != nil {
		return err
	}
	status, err := reader.Peek(12)
	if err != nil {
		return err
	}
	ok := bytes.Equal(status[9:12], []byte("200"))
	length, err := readHead(reader)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, reader, int64(length)); err != nil {
		return err
	}
	if !ok {
		return errStatus
	}
	return nil
}
