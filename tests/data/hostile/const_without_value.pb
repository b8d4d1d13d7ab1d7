
.
xPlaceholder*
dtype0*
shape:


cConst

aAddV2xc