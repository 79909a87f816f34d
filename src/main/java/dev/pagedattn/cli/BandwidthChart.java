package dev.pagedattn.cli;

import java.awt.BasicStroke;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** Effective bandwidth against batch, one line per context length, with the measured read ceiling. */
final class BandwidthChart {
    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728),
            new Color(0x9467bd), new Color(0x8c564b)};

    private BandwidthChart() {
    }

    /**
     * @param ours  best of our variants per cell
     * @param peer  best peer per cell (may be empty), drawn dashed in the same colour
     */
    static void write(Path png, String title, List<BenchRow> ours, List<BenchRow> peer, String peerName, double ceiling)
            throws IOException {
        XYChart chart = new XYChartBuilder().width(1000).height(620).title(title).xAxisTitle("batch (sequences)")
                .yAxisTitle("effective bandwidth (GB/s)").build();
        chart.getStyler().setXAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(org.knowm.xchart.style.Styler.LegendPosition.OutsideE);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        Map<String, Integer> colorOf = new TreeMap<>();
        series(chart, ours, "ours", colorOf, false);
        series(chart, peer, peerName, colorOf, true);
        double minBatch = ours.stream().mapToInt(BenchRow::batch).filter(b -> b > 0).min().orElse(1);
        double maxBatch = ours.stream().mapToInt(BenchRow::batch).max().orElse(256);
        XYSeries c = chart.addSeries(String.format("read ceiling %.0f GB/s", ceiling), new double[] {minBatch, maxBatch},
                new double[] {ceiling, ceiling});
        c.setMarker(SeriesMarkers.NONE);
        c.setLineColor(Color.BLACK);
        c.setLineStyle(new BasicStroke(2f));
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
    }

    private static void series(XYChart chart, List<BenchRow> rows, String who, Map<String, Integer> colorOf, boolean dashed) {
        Map<String, TreeMap<Integer, Double>> byContext = new TreeMap<>((a, b) -> key(a) - key(b));
        for (BenchRow r : rows) {
            if (r.ok() && r.batch() > 0) {
                byContext.computeIfAbsent(r.context(), k -> new TreeMap<>()).merge(r.batch(), r.gbs(), Math::max);
            }
        }
        for (Map.Entry<String, TreeMap<Integer, Double>> e : byContext.entrySet()) {
            double[] x = e.getValue().keySet().stream().mapToDouble(Integer::doubleValue).toArray();
            double[] y = e.getValue().values().stream().mapToDouble(Double::doubleValue).toArray();
            XYSeries s = chart.addSeries(who + " L=" + e.getKey(), x, y);
            int color = colorOf.computeIfAbsent(e.getKey(), k -> colorOf.size());
            s.setLineColor(COLORS[color % COLORS.length]);
            s.setMarkerColor(COLORS[color % COLORS.length]);
            if (dashed) {
                s.setLineStyle(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {6f, 4f}, 0f));
                s.setMarker(SeriesMarkers.NONE);
            }
        }
    }

    /** Orders contexts numerically, the ragged "MIN..MAX" last. */
    private static int key(String context) {
        return context.contains("..") ? Integer.MAX_VALUE : Integer.parseInt(context);
    }
}
