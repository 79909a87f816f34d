package dev.pagedattn.cli;

import dev.pagedattn.cache.HybridKvCache;
import dev.pagedattn.cache.OutOfBlocksException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * An engine's scheduler run over a {@link HybridKvCache}, bookkeeping only: no K/V is written and no attention runs, so
 * what it measures is how many sequences the cache's blocks let run at once. Each step, as vLLM's scheduler does it:
 * <ol>
 *   <li>every running sequence whose prompt is in appends one generated token, in the order they were admitted; when the
 *       cache cannot take it, the newest running sequence is preempted (freed and put back at the head of the queue, to
 *       be prefilled again with the tokens it had generated: recompute preemption) until it can;</li>
 *   <li>running sequences still in their prompt, then queued requests in order (while fewer than {@code maxSeqs} run),
 *       append a chunk of at most {@code chunk} prompt tokens each from what is left of the step's {@code batchTokens}
 *       (a decode token counts one), stopping at the first chunk the cache cannot take; a step that preempted or
 *       refused a running sequence's chunk admits no queued request;</li>
 *   <li>a sequence that has generated its output is freed.</li>
 * </ol>
 * A step in which no sequence could append a token preempts the newest running sequence.
 */
final class ServingSim {
    private ServingSim() {
    }

    /** A request: its prompt's tokens and the tokens it generates. */
    record Request(int prompt, int output) {
    }

    /**
     * What a run took: {@code steps} to serve every request, the tokens generated (every request's output) and prefilled
     * (prompts, preempted ones again), the running sequences per step (mean, most), and the preemptions.
     */
    record Result(long steps, long generated, long prefilled, double meanRunning, int peakRunning, long preemptions) {
        /** Generated tokens per step: the trace's decode throughput in steps, whatever a step costs. */
        double tokensPerStep() {
            return steps == 0 ? 0 : generated / (double) steps;
        }
    }

    private static final class Running {
        final int request;
        final int prompt;   // tokens to prefill (a preempted request's generated tokens included)
        final int output;   // tokens still to generate
        int seq;
        int prefilled;
        int generated;

        Running(int request, int prompt, int output) {
            this.request = request;
            this.prompt = prompt;
            this.output = output;
        }
    }

    /**
     * Serves {@code trace} on {@code cache} (empty at the start, empty again at the end).
     *
     * @throws IllegalArgumentException naming the request the cache cannot hold even alone
     */
    static Result run(HybridKvCache cache, List<Request> trace, int maxSeqs, int batchTokens, int chunk) {
        Deque<Running> waiting = new ArrayDeque<>();
        for (int i = 0; i < trace.size(); i++) {
            waiting.add(new Running(i, trace.get(i).prompt(), trace.get(i).output()));
        }
        List<Running> running = new ArrayList<>();
        long steps = 0;
        long generated = 0;
        long prefilled = 0;
        long runningSum = 0;
        int peak = 0;
        long preemptions = 0;
        try {
            while (!waiting.isEmpty() || !running.isEmpty()) {
                int budget = batchTokens;
                boolean hold = false; // a preemption or a refused chunk this step: admit nobody (vLLM does the same)
                for (int i = 0; i < running.size(); i++) {
                    Running r = running.get(i);
                    if (r.prefilled < r.prompt) {
                        continue;
                    }
                    while (!cache.canAppend(r.seq, 1) && running.get(running.size() - 1) != r) {
                        preempt(cache, running, waiting);
                        preemptions++;
                        hold = true;
                    }
                    if (!cache.canAppend(r.seq, 1)) { // the newest itself: out it goes too
                        if (running.size() == 1) {
                            throw tooSmall(trace, r);
                        }
                        preempt(cache, running, waiting);
                        preemptions++;
                        hold = true;
                        break;
                    }
                    cache.append(r.seq, 1);
                    r.generated++;
                    generated++;
                    budget--;
                }
                for (Running r : running) {
                    if (budget <= 0) {
                        break;
                    }
                    if (r.prefilled < r.prompt) {
                        int n = Math.min(Math.min(r.prompt - r.prefilled, chunk), budget);
                        if (!cache.canAppend(r.seq, n)) {
                            hold = true;
                            break;
                        }
                        cache.append(r.seq, n);
                        r.prefilled += n;
                        prefilled += n;
                        budget -= n;
                    }
                }
                while (!hold && budget > 0 && !waiting.isEmpty() && running.size() < maxSeqs) {
                    Running r = waiting.peek();
                    int n = Math.min(Math.min(r.prompt, chunk), budget);
                    int seq = cache.createSequence();
                    if (!cache.canAppend(seq, n)) {
                        cache.free(seq);
                        if (running.isEmpty()) {
                            throw tooSmall(trace, r);
                        }
                        break;
                    }
                    waiting.poll();
                    cache.append(seq, n);
                    r.seq = seq;
                    r.prefilled = n;
                    prefilled += n;
                    budget -= n;
                    running.add(r);
                }
                if (budget == batchTokens) { // nothing appended: every running prompt is stuck on its next chunk
                    if (running.size() <= 1) {
                        throw tooSmall(trace, running.isEmpty() ? waiting.peek() : running.get(0));
                    }
                    preempt(cache, running, waiting);
                    preemptions++;
                }
                peak = Math.max(peak, running.size());
                runningSum += running.size();
                steps++;
                for (int i = running.size() - 1; i >= 0; i--) {
                    Running r = running.get(i);
                    if (r.prefilled == r.prompt && r.generated >= r.output) {
                        cache.free(r.seq);
                        running.remove(i);
                    }
                }
            }
        } catch (OutOfBlocksException e) {
            throw new IllegalStateException("canAppend said yes and append refused", e);
        }
        return new Result(steps, generated, prefilled, steps == 0 ? 0 : runningSum / (double) steps, peak, preemptions);
    }

    /** Frees the newest running sequence and queues its request first, its generated tokens to be prefilled again. */
    private static void preempt(HybridKvCache cache, List<Running> running, Deque<Running> waiting) {
        Running victim = running.remove(running.size() - 1);
        cache.free(victim.seq);
        int kept = victim.prompt + victim.generated;
        waiting.addFirst(new Running(victim.request, kept, victim.output - victim.generated));
    }

    private static IllegalArgumentException tooSmall(List<Request> trace, Running r) {
        Request q = trace.get(r.request);
        return new IllegalArgumentException("the cache cannot hold request " + r.request + " (prompt " + q.prompt() + ", output "
                + q.output() + ") even alone");
    }
}
