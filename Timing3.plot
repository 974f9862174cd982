set output 'Timing3.svg
set terminal svg
set multiplot
set grid
set title "Clients end date"
set xlabel "audio cycles"
set ylabel "usec"
plot "/tmp/pwg-prof/profiler.log" using 1 title "Audio period" with lines, "/tmp/pwg-prof/profiler.log" using 8 title "pw-cat/42" with lines
unset multiplot
unset output
