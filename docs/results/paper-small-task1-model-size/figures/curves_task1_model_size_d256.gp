# task1_model_size: test accuracy during training, width 256 (drawn by selectivbench report; run `gnuplot curves_task1_model_size_d256.gp` here to draw it again)
set terminal svg size 760,460 dynamic font "sans,12" noenhanced background rgb "white"
set output "curves_task1_model_size_d256.svg"
set title "task1_model_size: test accuracy during training, width 256"
set xlabel "update"
set ylabel "test accuracy"
set key outside right top vertical Left reverse noautotitle
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set datafile missing "NaN"
set datafile separator "\t"
set xrange [0:*]
set yrange [0:*]
plot "curves_task1_model_size_d256.dat" index 0 using 1:2 with lines lw 2 lc rgb "#000000" title "transformer", \
     "curves_task1_model_size_d256.dat" index 1 using 1:2 with lines lw 2 lc rgb "#2ca02c" title "gla", \
     "curves_task1_model_size_d256.dat" index 2 using 1:2 with lines lw 2 lc rgb "#1f77b4" title "mamba", \
     "curves_task1_model_size_d256.dat" index 3 using 1:2 with lines lw 2 lc rgb "#17becf" title "mamba2", \
     "curves_task1_model_size_d256.dat" index 4 using 1:2 with lines lw 2 lc rgb "#d62728" title "delta_net", \
     "curves_task1_model_size_d256.dat" index 5 using 1:2 with lines lw 2 lc rgb "#ff7f0e" title "gated_delta_net", \
     "curves_task1_model_size_d256.dat" index 6 using 1:2 with lines lw 2 lc rgb "#9467bd" title "gated_delta_product"
set terminal pngcairo size 1140,690 font "sans,14" noenhanced background rgb "white"
set output "curves_task1_model_size_d256.png"
replot
unset output
