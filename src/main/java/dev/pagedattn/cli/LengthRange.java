package dev.pagedattn.cli;

/** A length flag's value: {@code N} or {@code MIN..MAX}, with {@code 1 <= MIN <= MAX}; messages name the flag. */
final class LengthRange {
    private LengthRange() {
    }

    /** {MIN, MAX} of {@code text}, the value of {@code flag}. */
    static int[] parse(String flag, String text) {
        int min;
        int max;
        try {
            int dots = text.indexOf("..");
            if (dots >= 0) {
                min = Integer.parseInt(text.substring(0, dots).trim());
                max = Integer.parseInt(text.substring(dots + 2).trim());
            } else {
                min = max = Integer.parseInt(text.trim());
            }
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + "=" + text + " is not a length or a MIN..MAX range");
        }
        if (min < 1 || max < min) {
            throw new IllegalArgumentException(flag + "=" + text + " needs 1 <= MIN <= MAX");
        }
        return new int[] {min, max};
    }
}
