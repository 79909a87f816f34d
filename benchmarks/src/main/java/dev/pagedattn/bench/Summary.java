package dev.pagedattn.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Turns JMH's JSON result into a flat CSV and the Markdown tables of {@code benchmarks/NOTES.md}:
 * the memory-stream ceiling, the decode as GB/s and % of that ceiling with vector vs scalar, and the
 * cache operations in ns/op. Medians are shown next to JMH's mean because the machines this
 * runs on are often shared: the median iteration ignores the one that another process disturbed.
 *
 * <pre>
 *  java -cp benchmarks.jar dev.pagedattn.bench.Summary RESULT.json OUT.csv MODE SECONDS LOAD_AT_START > summary.md
 * </pre>
 */
public final class Summary {
    /** One JMH metric: mean with its 99.9% error, and the distribution of the samples. */
    record Metric(double score, double error, double median, double min, double max, int samples, String unit) {
        static Metric of(Map<String, Object> m) {
            Map<?, ?> pct = (Map<?, ?>) m.get("scorePercentiles");
            int n = 0;
            for (Object fork : (List<?>) m.getOrDefault("rawData", List.of())) {
                n += ((List<?>) fork).size();
            }
            return new Metric(JmhJson.number(m.get("score")), JmhJson.number(m.get("scoreError")),
                    JmhJson.number(pct.get("50.0")), JmhJson.number(pct.get("0.0")), JmhJson.number(pct.get("100.0")),
                    n, (String) m.get("scoreUnit"));
        }
    }

    /** One benchmark at one parameter point; {@code gigabytes} is null unless it counts bytes. */
    record Row(String name, String mode, Map<String, String> params, Metric primary, Metric gigabytes) {
        String param(String key) {
            return params.getOrDefault(key, "");
        }

        String paramText() {
            return params.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).collect(Collectors.joining(" "));
        }
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 5) {
            throw new IllegalArgumentException("usage: Summary RESULT.json OUT.csv MODE SECONDS LOAD_AT_START");
        }
        List<?> json = (List<?>) JmhJson.parse(Files.readString(Path.of(args[0])));
        List<Row> rows = new ArrayList<>();
        String jdk = "";
        String jvmArgs = "";
        for (Object o : json) {
            Map<?, ?> b = (Map<?, ?>) o;
            String full = (String) b.get("benchmark");
            String[] parts = full.split("\\.");
            String name = parts[parts.length - 2] + "." + parts[parts.length - 1];
            Map<String, String> params = new LinkedHashMap<>();
            if (b.get("params") instanceof Map<?, ?> p) {
                p.forEach((k, v) -> params.put((String) k, (String) v));
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> primary = (Map<String, Object>) b.get("primaryMetric");
            Map<?, ?> secondary = (Map<?, ?>) b.get("secondaryMetrics");
            @SuppressWarnings("unchecked")
            Map<String, Object> gb = secondary == null ? null : (Map<String, Object>) secondary.get("gigabytes");
            rows.add(new Row(name, (String) b.get("mode"), params, Metric.of(primary), gb == null ? null : Metric.of(gb)));
            jdk = b.get("vmName") + " " + b.get("jdkVersion");
            if (b.get("jvmArgs") instanceof List<?> a && !name.startsWith("Scalar")) {
                jvmArgs = a.stream().map(String::valueOf).collect(Collectors.joining(" "));
            }
        }
        writeCsv(rows, Path.of(args[1]));
        System.out.print(markdown(rows, args[2], Integer.parseInt(args[3]), args[4], jdk, jvmArgs));
    }

    private static void writeCsv(List<Row> rows, Path out) throws IOException {
        StringBuilder sb = new StringBuilder("benchmark,params,mode,unit,score,error,median,min,max,samples,gbps_median,gbps_score\n");
        for (Row r : rows) {
            Metric m = r.primary();
            Metric g = r.gigabytes();
            sb.append(String.format(Locale.ROOT, "%s,\"%s\",%s,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%s,%s%n", r.name(), r.paramText(),
                    r.mode(), m.unit(), m.score(), m.error(), m.median(), m.min(), m.max(), m.samples(),
                    g == null ? "" : fmt("%.4g", g.median()), g == null ? "" : fmt("%.4g", g.score())));
        }
        Files.writeString(out, sb.toString());
    }

    static String markdown(List<Row> rows, String mode, int seconds, String loadAtStart, String jdk, String jvmArgs) {
        StringBuilder sb = new StringBuilder();
        sb.append("# JMH summary (").append(mode).append(")\n\n");
        sb.append(fmt("Machine: %d cores, %s; %s. Load average (1 min) at start %s, at end %.2f. ", Runtime.getRuntime().availableProcessors(),
                cpuModel(), jdk, loadAtStart, ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage()));
        sb.append(fmt("Run time %d min %d s including the build. ", seconds / 60, seconds % 60));
        sb.append("Checked mode: off (Checks.CHECKED=false; every benchmark's setup printed it and refuses to run otherwise).\n");
        sb.append("JVM flags: `").append(jvmArgs).append("`.\n");
        sb.append("\"median\" is the median sample; \"mean ± err\" is JMH's score with its 99.9% error.\n");

        Map<String, Row> refs = new LinkedHashMap<>(); // threads -> largest buffer
        sb.append("\n## Memory stream baseline (StreamBenchmark: vectorised sum over an off-heap buffer)\n\n");
        sb.append("| buffer MiB | threads | GB/s median | GB/s mean ± err |\n|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            if (r.name().equals("StreamBenchmark.sum")) {
                sb.append(fmt("| %s | %s | %.1f | %.1f ± %.1f |%n", r.param("megabytes"), r.param("threads"),
                        r.gigabytes().median(), r.gigabytes().score(), r.gigabytes().error()));
                refs.merge(r.param("threads"), r, (a, b) ->
                        Integer.parseInt(a.param("megabytes")) >= Integer.parseInt(b.param("megabytes")) ? a : b);
            }
        }
        for (Row ref : refs.values()) {
            sb.append(fmt("%n%% of stream for a decode with threads=%s is against %.1f GB/s (%s MiB, median).", ref.param("threads"),
                    ref.gigabytes().median(), ref.param("megabytes")));
        }
        sb.append('\n');

        sb.append("\n## Decode (JvmDecodeAttention), head dim 128: time per decode step and effective bandwidth\n\n");
        sb.append("| q/kv heads | dtype | batch | context | block | threads | MB/decode | vector µs | vector GB/s | % stream | scalar µs | scalar GB/s | % stream | vector speed-up |\n");
        sb.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        Map<String, Row[]> decode = vectorScalarPairs(rows, "DecodeBenchmark.decode", "ScalarDecodeBenchmark.decode");
        for (Row[] pair : decode.values()) {
            Row any = pair[0] != null ? pair[0] : pair[1];
            double mb = any.gigabytes().median() / any.primary().median() * 1e3;
            String threads = any.params().getOrDefault("threads", "all");
            Row ref = refs.getOrDefault(threads,
                    threads.equals(Integer.toString(Runtime.getRuntime().availableProcessors())) ? refs.get("all") : null);
            double stream = ref == null ? Double.NaN : ref.gigabytes().median();
            String[] bxc = any.params().getOrDefault("cell", "-").equals("-")
                    ? new String[] {any.param("batch"), any.param("context")} : any.param("cell").split("x");
            sb.append(fmt("| %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s |", any.param("heads"), any.param("dtype"), bxc[0],
                    bxc[1], any.param("blockSize"), threads, mb, decodeCells(pair[0], stream), decodeCells(pair[1], stream),
                    pair[0] == null || pair[1] == null ? "" : fmt("%.2fx", pair[0].primary().median() / pair[1].primary().median())));
            sb.append('\n');
        }
        if (!decode.isEmpty()) {
            sb.append("\nµs = 1e6 / median decodes per second; GB/s = DecodeWorkload.minimumBytes() per decode x decodes per second (median).\n");
            String rotation = decode.values().iterator().next()[0] == null ? "" : decode.values().iterator().next()[0].param("rotationMB");
            sb.append("K/V rotated through ").append(rotation).append(" MiB of batches (cold, as in a real multi-layer decode step).\n");
        }

        sb.append("\n## Prefill (JvmPrefillAttention), causal over a cached prefix: time per call and GFLOP/s\n\n");
        sb.append("| q/kv heads | head dim | dtype | batch | prefix | new tokens | threads | GFLOP/call | vector ms | vector GFLOP/s | scalar ms | scalar GFLOP/s | vector speed-up |\n");
        sb.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        Map<String, Row[]> prefill = vectorScalarPairs(rows, "PrefillBenchmark.prefill", "ScalarPrefillBenchmark.prefill");
        for (Row[] pair : prefill.values()) {
            Row any = pair[0] != null ? pair[0] : pair[1];
            long n = Long.parseLong(any.param("queryLen"));
            long visible = Long.parseLong(any.param("batch")) * (n * Long.parseLong(any.param("prefix")) + n * (n + 1) / 2);
            int headDim = Integer.parseInt(any.params().getOrDefault("headDim", "128"));
            double gflop = 4.0 * visible * Integer.parseInt(any.param("heads").split("/")[0]) * headDim / 1e9;
            sb.append(fmt("| %s | %d | %s | %s | %s | %s | %s | %.2f | %s | %s | %s |%n", any.param("heads"), headDim, any.param("dtype"),
                    any.param("batch"), any.param("prefix"), any.param("queryLen"), any.param("threads"), gflop,
                    prefillCells(pair[0], gflop), prefillCells(pair[1], gflop),
                    pair[0] == null || pair[1] == null ? "" : fmt("%.2fx", pair[1].primary().median() / pair[0].primary().median())));
        }
        if (!prefill.isEmpty()) {
            sb.append("\nms = median time per call; GFLOP = 4 per visible (query, key) pair, query head and dim (PrefillWorkload.flops).\n");
        }

        sb.append("\n## Cache manager, checked mode off (ns per call)\n\n");
        sb.append("| operation | params | mode | ns/op median | ns/op mean ± err | min |\n|---|---|---|---:|---:|---:|\n");
        for (Row r : rows) {
            if (r.name().startsWith("Cache") || r.name().startsWith("Prefix") || r.name().startsWith("Baseline")) {
                Metric m = r.primary();
                sb.append(fmt("| %s | %s | %s | %.1f | %.1f ± %.1f | %.1f |%n", r.name(), r.paramText(), r.mode(), m.median(),
                        m.score(), m.error(), m.min()));
            }
        }
        sb.append("\nss = single-shot batches (JMH sample 26) for operations that change the cache for good; avgt = steady state.\n");
        return sb.toString();
    }

    private static String decodeCells(Row r, double stream) {
        if (r == null) {
            return " | | ";
        }
        double gbps = r.gigabytes().median();
        return fmt("%.0f | %.1f | %.0f%%", 1e6 / r.primary().median(), gbps, 100 * gbps / stream);
    }

    /** The rows of a benchmark and of its scalar fork, paired by parameters: {@code [vector, scalar]}, either may be null. */
    private static Map<String, Row[]> vectorScalarPairs(List<Row> rows, String vectorName, String scalarName) {
        Map<String, Row[]> pairs = new LinkedHashMap<>();
        for (Row r : rows) {
            boolean vector = r.name().equals(vectorName);
            if (vector || r.name().equals(scalarName)) {
                pairs.computeIfAbsent(r.paramText(), k -> new Row[2])[vector ? 0 : 1] = r;
            }
        }
        return pairs;
    }

    private static String prefillCells(Row r, double gflop) {
        return r == null ? " | " : fmt("%.1f | %.1f", r.primary().median(), gflop / (r.primary().median() / 1e3));
    }

    private static String cpuModel() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim() + " (" + System.getProperty("os.arch") + ")";
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: fall through
        }
        return System.getProperty("os.arch");
    }

    private static String fmt(String format, Object... args) {
        return String.format(Locale.ROOT, format, args);
    }
}
