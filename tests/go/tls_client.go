// tls_client calls a sidecar the way the chain node does: grpc-go over mutual
// TLS (TLS 1.3 at least, as upstream's pkg/inference), or plaintext.
//
// Each stdin line "METHOD HEX" is one call of the full method name with the
// hex-encoded request bytes; each stdout line is "OK HEX" (the response bytes
// exactly as received) or "ERR CODE MESSAGE". Bytes pass through unparsed, so
// the caller compares them with what another client received.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error)      { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error { *(v.(*[]byte)) = append([]byte(nil), data...); return nil }
func (rawCodec) Name() string                               { return "proto" }

func main() {
	addr := flag.String("addr", "", "host:port")
	caFile := flag.String("cacert", "", "CA that signed the server certificate; empty: plaintext")
	certFile := flag.String("cert", "", "client certificate (empty: present none)")
	keyFile := flag.String("key", "", "client key")
	serverName := flag.String("server-name", "localhost", "name the server certificate must carry")
	flag.Parse()

	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}))}
	if *caFile == "" {
		opts = append(opts, grpc.WithInsecure())
	} else {
		pem, err := ioutil.ReadFile(*caFile)
		if err != nil {
			fail(err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			fail(fmt.Errorf("no certificate in %s", *caFile))
		}
		cfg := &tls.Config{RootCAs: roots, ServerName: *serverName, MinVersion: tls.VersionTLS13}
		if *certFile != "" {
			pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				fail(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	conn, err := grpc.Dial(*addr, opts...)
	if err != nil {
		fail(err)
	}
	defer conn.Close()

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	for in.Scan() {
		fields := strings.SplitN(in.Text(), " ", 2)
		if len(fields) != 2 {
			fail(fmt.Errorf("want METHOD HEX, got %q", in.Text()))
		}
		req, err := hex.DecodeString(fields[1])
		if err != nil {
			fail(err)
		}
		var resp []byte
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = conn.Invoke(ctx, fields[0], &req, &resp)
		cancel()
		if err != nil {
			s := status.Convert(err)
			fmt.Printf("ERR %s %s\n", s.Code(), strings.ReplaceAll(s.Message(), "\n", " "))
		} else {
			fmt.Printf("OK %s\n", hex.EncodeToString(resp))
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}
