# task1_model_size: test accuracy per model and width, 8 layers (drawn by selectivbench report; run `gnuplot task1_model_size_by_model_and_width.gp` here to draw it again)
set terminal svg size 760,460 dynamic font "sans,12" noenhanced background rgb "white"
set output "task1_model_size_by_model_and_width.svg"
set title "task1_model_size: test accuracy per model and width, 8 layers"
set xlabel "width"
set ylabel "test accuracy"
set key outside right top vertical Left reverse noautotitle
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set datafile missing "NaN"
set datafile separator "\t"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set xtics scale 0
plot "task1_model_size_by_model_and_width.dat" using 2:3:xtic(1) lc rgb "#000000" title "transformer", \
     '' using 4:5 lc rgb "#2ca02c" title "gla", \
     '' using 6:7 lc rgb "#1f77b4" title "mamba", \
     '' using 8:9 lc rgb "#17becf" title "mamba2", \
     '' using 10:11 lc rgb "#d62728" title "delta_net", \
     '' using 12:13 lc rgb "#ff7f0e" title "gated_delta_net", \
     '' using 14:15 lc rgb "#9467bd" title "gated_delta_product"
set terminal pngcairo size 1140,690 font "sans,14" noenhanced background rgb "white"
set output "task1_model_size_by_model_and_width.png"
replot
unset output
