#!/bin/bash
until grep -q "^rc" train_ftL-20.log; do sleep 10; done
bash eval5.sh /work/exp/runs/ftL-20 bin-color 30 100000 base
echo done > chain15.done
