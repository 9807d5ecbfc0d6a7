"""Sample-quality evaluation: FID InceptionV3 (pytorch-fid weights), FID and Inception Score."""
